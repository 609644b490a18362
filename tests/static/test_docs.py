"""Generated documents are current: docs/variables.md and the Postman collection."""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import sys
from pathlib import Path

import pytest
import yaml
from conftest import ROOT, VENV_BIN, run

spec = importlib.util.spec_from_file_location("gen_docs", ROOT / "scripts" / "gen_docs.py")
gen_docs = importlib.util.module_from_spec(spec)
spec.loader.exec_module(gen_docs)

HTTP_METHODS = {"get", "put", "post", "delete", "patch", "head", "options", "trace"}


def python() -> str:
    venv_python = VENV_BIN / "python"
    return str(venv_python) if venv_python.exists() else sys.executable


def test_generated_docs_are_up_to_date():
    result = run([python(), "scripts/gen_docs.py", "--check"])
    assert result.returncode == 0, (
        f"{result.stderr.strip()}\nGenerated docs are stale: run `{gen_docs.REGENERATE}` and commit them."
    )


def test_variables_doc_lists_every_role_and_every_spec_option():
    text = (ROOT / gen_docs.VARIABLES_MD).read_text()
    headings = [line[3:] for line in text.splitlines() if line.startswith("## ")]
    assert headings == gen_docs.role_order(ROOT)
    roles = yaml.safe_load((ROOT / "group_vars/all/main.yml").read_text())["whatsapp_roles"]
    assert headings[: len(roles)] == roles, "whatsapp_roles (deploy order) must come first"
    for spec_file in sorted(ROOT.glob("roles/*/meta/argument_specs.yml")):
        for entry in (yaml.safe_load(spec_file.read_text())["argument_specs"] or {}).values():
            for name in (entry or {}).get("options") or {}:
                assert f"| `{name}` |" in text, f"{name} ({spec_file.parent.parent.name}) missing"


def _fake_role(root: Path, name: str, spec: dict, defaults: dict) -> None:
    (root / "roles" / name / "meta").mkdir(parents=True)
    (root / "roles" / name / "defaults").mkdir(parents=True)
    (root / "roles" / name / "meta/argument_specs.yml").write_text(yaml.safe_dump(spec))
    (root / "roles" / name / "defaults/main.yml").write_text(yaml.safe_dump(defaults))


def test_generator_picks_up_any_role_with_types_defaults_and_sources(tmp_path: Path):
    (tmp_path / "group_vars/all").mkdir(parents=True)
    (tmp_path / "group_vars/all/main.yml").write_text(yaml.safe_dump({"whatsapp_roles": ["zeta"]}))
    (tmp_path / "group_vars/all/ports.yml").write_text(yaml.safe_dump({"zeta_port": 9999}))
    options = {
        "zeta_port": {"type": "int", "required": True, "description": "Host port."},
        "zeta_image": {"type": "str", "default": "zeta:1", "description": "Image."},
        "zeta_mode": {"type": "str", "default": "a", "choices": ["a", "b"], "description": "Mode."},
        "zeta_build": {"type": "bool", "default": False, "description": "Build, with | a pipe."},
    }
    _fake_role(
        tmp_path,
        "zeta",
        {"argument_specs": {"main": {"short_description": "Zeta.", "options": options}}},
        {"zeta_image": "zeta:1", "zeta_mode": "a", "zeta_build": "{{ x | default('y') == 'build' }}"},
    )
    _fake_role(tmp_path, "alpha", {"argument_specs": {"main": {"options": {}}}}, {"alpha_extra": 3})
    text = gen_docs.render_variables(tmp_path)
    assert [line[3:] for line in text.splitlines() if line.startswith("## ")] == ["zeta", "alpha"]
    assert "| `zeta_port` | int | required; `9999` in group_vars/all/ports.yml | Host port. |" in text
    assert "| `zeta_mode` | str | `a` | Mode. One of: `a`, `b`. |" in text
    # defaults/main.yml wins (it is what Ansible applies), shown as raw Jinja, pipes escaped.
    assert "`{{ x \\| default('y') == 'build' }}`" in text
    assert "Build, with \\| a pipe." in text
    assert "| `alpha_extra` | (not in the spec) | `3` |" in text


def test_check_passes_on_a_fresh_copy_and_names_the_file_a_spec_change_makes_stale(tmp_path: Path):
    for part in ("group_vars/all", "docs"):
        shutil.copytree(ROOT / part, tmp_path / part)
    for role in (ROOT / "roles").iterdir():
        for part in ("meta", "defaults"):
            if (role / part).is_dir():
                shutil.copytree(role / part, tmp_path / "roles" / role.name / part)
    check = [python(), "scripts/gen_docs.py", "--check", "--root", str(tmp_path)]
    assert run([python(), "scripts/gen_docs.py", "--root", str(tmp_path)]).returncode == 0
    assert run(check).returncode == 0
    spec = tmp_path / "roles/redis/meta/argument_specs.yml"
    spec.write_text(spec.read_text().replace("Append-only file persistence.", "AOF persistence."))
    result = run(check)
    assert result.returncode == 1
    assert "docs/variables.md is out of date" in result.stderr
    assert "postman" not in result.stderr
    assert f"regenerate with: {gen_docs.REGENERATE}" in result.stderr


def _operations(document: dict) -> list[tuple[str, str, dict]]:
    return [
        (method.upper(), path, operation)
        for path, item in document["paths"].items()
        for method, operation in item.items()
        if method in HTTP_METHODS
    ]


@pytest.fixture(scope="module")
def openapi() -> dict:
    return yaml.safe_load((ROOT / gen_docs.OPENAPI).read_text())


@pytest.fixture(scope="module")
def collection() -> dict:
    return json.loads((ROOT / gen_docs.POSTMAN).read_text())


def _requests(collection: dict) -> list[tuple[str, dict]]:
    return [(folder["name"], item) for folder in collection["item"] for item in folder["item"]]


def _path_of(request: dict) -> str:
    segments = request["url"]["path"]
    return "/" + "/".join(f"{{{s[1:]}}}" if s.startswith(":") else s for s in segments)


def test_postman_collection_has_one_request_per_operation(openapi: dict, collection: dict):
    wanted = sorted((method, path) for method, path, _ in _operations(openapi))
    got = sorted((item["request"]["method"], _path_of(item["request"])) for _, item in _requests(collection))
    assert got == wanted


def test_postman_collection_shape(openapi: dict, collection: dict):
    assert collection["info"]["schema"] == gen_docs.POSTMAN_SCHEMA
    assert {v["key"]: v["value"] for v in collection["variable"]}["baseUrl"] == openapi["servers"][0]["url"]
    assert [f["name"] for f in collection["item"]] == [t["name"] for t in openapi["tags"]]
    operations = {(method, path): op for method, path, op in _operations(openapi)}
    for folder, item in _requests(collection):
        request = item["request"]
        operation = operations[(request["method"], _path_of(request))]
        assert folder == operation["tags"][0]
        assert request["url"]["raw"].startswith("{{baseUrl}}/")
        path_vars = {v["key"] for v in request["url"].get("variable", [])}
        assert path_vars == {s[1:] for s in request["url"]["path"] if s.startswith(":")}
        secured = any(operation.get("security", openapi["security"]))
        if secured:
            assert request["auth"]["bearer"][0]["value"] == "{{accessToken}}", request["url"]["raw"]
        else:
            assert request["auth"]["type"] == "noauth", request["url"]["raw"]
        if "requestBody" in operation and "application/json" not in operation["requestBody"]["content"]:
            assert request["body"]["mode"] == "file", request["url"]["raw"]  # a raw upload
            content_type = {h["key"]: h["value"] for h in request["header"]}["Content-Type"]
            assert content_type in operation["requestBody"]["content"]
        elif "requestBody" in operation:
            body = json.loads(request["body"]["raw"])
            schema = gen_docs.merged(
                openapi, operation["requestBody"]["content"]["application/json"]["schema"]
            )
            assert set(schema.get("required", [])) <= set(body), request["url"]["raw"]
        else:
            assert "body" not in request


def _mib(size: str) -> float:
    number, unit = re.fullmatch(r"([0-9.]+)([kmg]?)b?", str(size).lower()).groups()
    return float(number) * {"k": 1 / 1024, "m": 1, "g": 1024, "": 1 / 1024 / 1024}[unit]


def test_docker_desktop_guide_states_the_sums_of_the_limits_and_every_port():
    guide = (ROOT / "docs/deployment/docker-desktop-guide.md").read_text()
    limits = yaml.safe_load((ROOT / "group_vars/all/limits.yml").read_text())
    memory = sum(_mib(v) for k, v in limits.items() if k.endswith("_memory_limit"))
    reserved = sum(_mib(v) for k, v in limits.items() if k.endswith("_memory_reservation"))
    cpus = sum(float(v) for k, v in limits.items() if k.endswith("_cpus"))
    assert f"Memory limits add up to **{memory:.0f} MiB**" in guide, "update the guide's memory sum"
    assert f"reservations to **{reserved:.0f} MiB**" in guide, "update the guide's reservation sum"
    assert f"CPU limits add up to **{cpus:.2f}** CPUs" in guide, "update the guide's CPU sum"
    ports = yaml.safe_load((ROOT / "group_vars/all/ports.yml").read_text())
    for name, port in ports.items():
        assert re.search(rf"\b{port}\b", guide), f"{name} ({port}) is missing from the guide's ports"
