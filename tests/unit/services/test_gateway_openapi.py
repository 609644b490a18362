"""docs/api/openapi.yaml: served as JSON by the gateway, complete against the contract,
and internally consistent (every $ref resolves, every schema is valid JSON Schema)."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
import yaml
from jsonschema import Draft202012Validator
from test_gateway_helpers import gateway_app, gateway_env

from services.common.config import SettingsError
from services.gateway import create_app
from services.gateway.routing import OWNERS, owner_of
from services.gateway.settings import GatewaySettings

ROOT = Path(__file__).resolve().parents[3]
OPENAPI = ROOT / "docs" / "api" / "openapi.yaml"
# The prose contract, as this repository carries it: every check below reads this copy.
CONTRACT = ROOT / "docs" / "api" / "api-contract.md"
# The team keeps the contract beside its checkouts (../shared); where that file is, the one
# test below keeps this copy equal to it. A clone without it checks the copy alone.
SHARED_CONTRACT = Path(os.environ.get("WHATSAPP_API_CONTRACT", ROOT.parent / "shared" / "api-contract.md"))
HTTP_METHODS = {"get", "put", "post", "delete", "patch", "head", "options", "trace"}
# Operations the contract states outside its tables (the health section, the /ws heading).
CONTRACT_EXTRAS = {
    ("GET", "/health"),
    ("GET", "/api/v1/health"),
    ("GET", "/api/v1/openapi.json"),
    ("GET", "/ws"),
}
# Named in the additions as "`DELETE` the same path", right after `PUT .../reaction`.
SAME_PATH_DELETE = ("PUT /api/v1/messages/{id}/reaction", ("DELETE", "/api/v1/messages/{}/reaction"))
# The gateway's own /api/v1 routes (everything else under /api/v1 is forwarded).
GATEWAY_ROUTES = {"/api/v1/health", "/api/v1/openapi.json"}
# `GET/POST /api/v1/contacts`, `DELETE /api/v1/contacts/{user_id}`, `GET /api/v1/users?phone=...`
TABLE_OPERATION = re.compile(
    r"\b((?:GET|POST|PUT|PATCH|DELETE)(?:/(?:GET|POST|PUT|PATCH|DELETE))*) (/api/v1/[^\s,|`?]*)"
)


def spec() -> dict:
    return yaml.safe_load(OPENAPI.read_text(encoding="utf-8"))


def normalize(path: str) -> str:
    """Path parameters compared by position, not name: `/users/{id}` == `/users/{user_id}`."""
    return re.sub(r"\{[^}/]+\}", "{}", path)


def spec_operations(document: dict) -> set[tuple[str, str]]:
    return {
        (method.upper(), normalize(path))
        for path, item in document["paths"].items()
        for method in item
        if method in HTTP_METHODS
    }


def contract_table_operations(text: str) -> set[tuple[str, str]]:
    operations = set()
    for line in text.splitlines():
        if not line.startswith("|"):
            continue
        first_cell = line.strip("|").split("|")[0]
        for methods, path in TABLE_OPERATION.findall(first_cell):
            for method in methods.split("/"):
                operations.add((method, normalize(path)))
    return operations


@pytest.fixture(scope="module")
def document() -> dict:
    return spec()


def test_openapi_json_is_the_yaml_document(document):
    response = gateway_app().test_client().get("/api/v1/openapi.json")
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    # Through JSON, so YAML-only types (none should exist) would show up as a difference.
    assert response.get_json() == json.loads(json.dumps(document))


def test_document_is_openapi_3_1_with_the_contracts_parts(document):
    assert document["openapi"].startswith("3.1")
    schemas = document["components"]["schemas"]
    for name in ("User", "Conversation", "Message", "Error", "TokenPair"):
        assert name in schemas, name
    bearer_scheme = document["components"]["securitySchemes"]["bearerAuth"]
    assert (bearer_scheme["type"], bearer_scheme["scheme"]) == ("http", "bearer")
    assert document["security"] == [{"bearerAuth": []}]
    responses = document["components"]["responses"]
    for name in ("ValidationError", "Unauthorized", "Forbidden", "NotFound", "Conflict"):
        assert name in responses, name
    for name in ("PayloadTooLarge", "RateLimited", "Unavailable"):
        assert name in responses, name
    assert "Retry-After" in responses["RateLimited"]["headers"]


def test_the_contract_copy_equals_the_shared_contract():
    text = CONTRACT.read_text(encoding="utf-8")
    assert text.startswith("#") and "## " in text, f"{CONTRACT} is not the contract"
    if SHARED_CONTRACT.is_file():
        stale = f"{CONTRACT} is stale: copy {SHARED_CONTRACT} over it"
        assert SHARED_CONTRACT.read_text(encoding="utf-8") == text, stale


# The v1.1 additions name their operations in prose (`GET /api/v1/sessions` -> ...); those
# not built yet (issues still open), kept here so the list can only shrink by building them.
V11_NOT_YET: set[tuple[str, str]] = set()


def v11_operations(text: str) -> set[tuple[str, str]]:
    """The operations the v1.1 additions name in backticks."""
    additions = text.split("# v1.1 additions", 1)[1]
    return {
        (method, normalize(path))
        for quoted in re.findall(r"`([^`]+)`", additions)
        for methods, path in TABLE_OPERATION.findall(quoted)
        for method in methods.split("/")
    }


def test_every_contract_table_operation_is_documented_and_nothing_else(document):
    text = CONTRACT.read_text(encoding="utf-8")
    table = contract_table_operations(text)
    assert len(table) >= 25, sorted(table)  # the parser found the tables
    additions = v11_operations(text)
    assert len(additions) >= 10, sorted(additions)  # and the additions' operations
    put_line, same_path_delete = SAME_PATH_DELETE
    assert re.search(re.escape(put_line) + r".*\n?.*`DELETE` the same path", text), put_line
    additions.add(same_path_delete)
    for method, path in CONTRACT_EXTRAS:
        assert f"{method} {path}" in text, (method, path)
    documented = spec_operations(document)
    assert documented - CONTRACT_EXTRAS == (table | additions) - V11_NOT_YET, {
        "missing from openapi.yaml": sorted((table | additions) - V11_NOT_YET - documented),
        "not in the contract": sorted(documented - CONTRACT_EXTRAS - table - additions),
        "built but still listed in V11_NOT_YET": sorted(documented & V11_NOT_YET),
    }
    assert additions >= V11_NOT_YET, sorted(V11_NOT_YET - additions)
    assert documented >= CONTRACT_EXTRAS


def test_contract_table_parser():
    text = (
        "| method and path | body | answer |\n"
        "| GET/POST /api/v1/contacts, DELETE /api/v1/contacts/{user_id} | POST `{user_id}` | 201 |\n"
        "| GET /api/v1/users?phone=+15550001 | | 200 |\n"
        "Not a table: POST /api/v1/ignored\n"
    )
    assert contract_table_operations(text) == {
        ("GET", "/api/v1/contacts"),
        ("POST", "/api/v1/contacts"),
        ("DELETE", "/api/v1/contacts/{}"),
        ("GET", "/api/v1/users"),
    }


def test_public_operations_are_the_contracts_public_ones(document):
    public = {
        (method.upper(), path)
        for path, item in document["paths"].items()
        for method, operation in item.items()
        if method in HTTP_METHODS and operation.get("security") == []
    }
    assert public == {
        ("POST", "/api/v1/auth/register"),
        ("POST", "/api/v1/auth/login"),
        ("POST", "/api/v1/auth/refresh"),
        ("GET", "/api/v1/health"),
        ("GET", "/api/v1/openapi.json"),
        ("GET", "/health"),
    }


def test_every_documented_api_path_is_routed_by_the_gateway(document):
    for path in document["paths"]:
        if path.startswith("/api/v1/") and path not in GATEWAY_ROUTES:
            assert owner_of(path) in {"user", "chat"}, path
    prefixes = {path.split("/")[3] for path in document["paths"] if path.startswith("/api/v1/")}
    assert prefixes - {"health", "openapi.json"} == set(OWNERS)


def test_every_ref_resolves_and_every_schema_is_valid(document):
    refs: set[str] = set()

    def walk(node: object) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "$ref":
                    refs.add(value)
                else:
                    walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(document)
    assert refs
    for ref in refs:
        assert ref.startswith("#/"), ref
        target: object = document
        for part in ref[2:].split("/"):
            assert isinstance(target, dict) and part in target, ref
            target = target[part]
    for schema in document["components"]["schemas"].values():
        Draft202012Validator.check_schema(schema)


def test_every_operation_answers_with_the_error_shape(document):
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if method not in HTTP_METHODS:
                continue
            assert operation.get("operationId"), (method, path)
            statuses = set(operation["responses"])
            if path.startswith("/api/v1/"):
                assert "429" in statuses, (method, path)
            if operation.get("security") != [] and path != "/ws":
                assert {"401", "503"} <= statuses, (method, path)
            if operation.get("requestBody"):
                assert {"400", "413"} <= statuses, (method, path)


def test_a_broken_document_stops_start_up(tmp_path):
    broken = tmp_path / "openapi.yaml"
    broken.write_text("openapi: [unclosed\n")
    settings = GatewaySettings.from_env(gateway_env(WHATSAPP_OPENAPI_PATH=str(broken)))
    with pytest.raises(SettingsError, match="WHATSAPP_OPENAPI_PATH"):
        create_app(settings)
    broken.write_text("just: a mapping\n")
    with pytest.raises(SettingsError, match="not an OpenAPI document"):
        create_app(settings)
