#!/usr/bin/env python3
"""Generate the documents derived from the project's own sources.

- docs/variables.md from every role's meta/argument_specs.yml (entry point `main`, plus any
  other entry point with its own options) and defaults/main.yml;
- docs/api/whatsapp.postman_collection.json (Postman v2.1) from docs/api/openapi.yaml: one
  request per operation, to explore the API;
- docs/api/whatsapp.flow.postman_collection.json: the contract's main flow as a run
  (`newman run` it against a deployed stack): two users register, talk, react, edit, delete,
  export and leave; ids and tokens travel in collection variables and every request checks
  its status.

Run with the venv's python: `.venv/bin/python scripts/gen_docs.py` writes both;
`--check` writes nothing and exits 1 naming every file that is out of date.
"""

from __future__ import annotations

import argparse
import copy
import json
import re
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
VARIABLES_MD = Path("docs/variables.md")
OPENAPI = Path("docs/api/openapi.yaml")
POSTMAN = Path("docs/api/whatsapp.postman_collection.json")
POSTMAN_FLOW = Path("docs/api/whatsapp.flow.postman_collection.json")
REGENERATE = ".venv/bin/python scripts/gen_docs.py"
POSTMAN_SCHEMA = "https://schema.getpostman.com/json/collection/v2.1.0/collection.json"
HTTP_METHODS = ("get", "put", "post", "delete", "patch", "head", "options", "trace")
NIL_UUID = "00000000-0000-0000-0000-000000000000"
# Body properties the collection fills from its own variables (set by register/login/refresh).
FROM_VARIABLES = {"refresh_token": "{{refreshToken}}"}
# A group_vars/all value longer than this is named by its file only.
MAX_INLINE_VALUE = 60


# --------------------------------------------------------------------------- variables.md


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8")) if path.is_file() else None


def role_order(root: Path) -> list[str]:
    """whatsapp_roles first (deploy order), then every other role alphabetically."""
    roles = sorted(p.name for p in (root / "roles").iterdir() if p.is_dir() and not p.name.startswith("."))
    main = load_yaml(root / "group_vars/all/main.yml") or {}
    ordered = [r for r in main.get("whatsapp_roles", []) if r in roles]
    return ordered + [r for r in roles if r not in ordered]


def group_vars_all(root: Path) -> dict[str, tuple[str, Any]]:
    """Every top-level variable of group_vars/all: name -> (file, value)."""
    found: dict[str, tuple[str, Any]] = {}
    folder = root / "group_vars/all"
    if folder.is_dir():
        for path in sorted(folder.glob("*.yml")):
            for name, value in (load_yaml(path) or {}).items():
                found[name] = (str(path.relative_to(root)), value)
    return found


def default_comments(path: Path) -> dict[str, str]:
    """The comment block above each top-level key of a defaults file (shared by the keys
    that follow it until a blank line)."""
    comments: dict[str, str] = {}
    block: list[str] = []
    if not path.is_file():
        return comments
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            block = []
        elif line.startswith("#"):
            block.append(line.lstrip("#").strip())
        elif m := re.match(r"^([A-Za-z_][A-Za-z0-9_]*):", line):
            comments[m[1]] = " ".join(block)
    return comments


DERIVED_MARK = "# ---- Derived"


def derived_keys(path: Path) -> list[str]:
    """The top-level keys below a defaults file's "# ---- Derived" line: the container spec and
    values built from the inputs, listed by name rather than tabulated."""
    keys: list[str] = []
    below = False
    if not path.is_file():
        return keys
    for line in path.read_text(encoding="utf-8").splitlines():
        below = below or line.startswith(DERIVED_MARK)
        if below and (m := re.match(r"^([A-Za-z_][A-Za-z0-9_]*):", line)):
            keys.append(m[1])
    return keys


def yaml_value(value: Any) -> str:
    """A value as it would be written in YAML (flow style), Jinja expressions kept raw."""
    if isinstance(value, str):
        return value if value else '""'
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, (int, float)):
        return str(value)
    return yaml.safe_dump(value, default_flow_style=True, width=10_000).strip()


def cell(text: str) -> str:
    """Text safe inside a Markdown table cell."""
    return " ".join(text.split()).replace("|", "\\|")


def code(value: Any) -> str:
    text = yaml_value(value)
    return f"`{cell(text)}`"


def describe(option: dict[str, Any]) -> str:
    text = option.get("description", "")
    if isinstance(text, list):
        text = " ".join(str(t) for t in text)
    return str(text)


def type_of(option: dict[str, Any]) -> str:
    kind = option.get("type", "str")
    if option.get("elements"):
        kind = f"{kind} of {option['elements']}"
    return kind


def option_rows(
    name: str,
    option: dict[str, Any],
    *,
    defaults: dict[str, Any],
    globals_: dict[str, tuple[str, Any]],
    secrets: set[str],
) -> list[str]:
    """One table row for the option, then one per sub-option (`parent[].child`)."""
    if name in defaults:
        default = code(defaults[name])
    elif "default" in option:
        default = code(option["default"])
    elif option.get("required"):
        if name in secrets:
            default = "required: an inventory secret"
        elif name in globals_:
            file, value = globals_[name]
            shown = yaml_value(value)
            default = (
                f"required; {code(value)} in {file}"
                if len(shown) <= MAX_INLINE_VALUE
                else f"required; set in {file}"
            )
        else:
            default = "required"
    else:
        default = "(none)"
    text = describe(option)
    if option.get("choices"):
        text += " One of: " + ", ".join(code(c) for c in option["choices"]) + "."
    if option.get("no_log"):
        text += " Secret (never logged)."
    rows = [f"| `{name}` | {cell(type_of(option))} | {default} | {cell(text)} |"]
    joiner = "[]." if option.get("type") == "list" else "."
    for sub_name, sub in (option.get("options") or {}).items():
        rows += option_rows(f"{name}{joiner}{sub_name}", sub, defaults={}, globals_={}, secrets=set())
    return rows


def role_section(root: Path, role: str, globals_: dict[str, tuple[str, Any]], secrets: set[str]) -> str:
    folder = root / "roles" / role
    specs = (load_yaml(folder / "meta/argument_specs.yml") or {}).get("argument_specs") or {}
    defaults = load_yaml(folder / "defaults/main.yml") or {}
    comments = default_comments(folder / "defaults/main.yml")
    derived = derived_keys(folder / "defaults/main.yml")
    lines = [f"## {role}", ""]
    if not specs:
        lines += [
            "No `meta/argument_specs.yml` yet"
            + (": the variables below come from `defaults/main.yml`." if defaults else " (and no defaults)."),
            "",
        ]
    main = specs.get("main") or {}
    if main.get("short_description"):
        lines += [cell(str(main["short_description"])), ""]
    header = ["| variable | type | default | description |", "| --- | --- | --- | --- |"]

    main_options = main.get("options") or {}
    rows: list[str] = []
    for name, option in main_options.items():
        rows += option_rows(name, option, defaults=defaults, globals_=globals_, secrets=secrets)
    # Variables the role defaults but its spec does not declare (still tunables).
    for name in defaults:
        if name not in main_options and name not in derived:
            rows.append(
                f"| `{name}` | (not in the spec) | {code(defaults[name])} | {cell(comments.get(name, ''))} |"
            )
    if rows:
        lines += header + rows + [""]
    if derived:
        names = ", ".join(f"`{name}`" for name in derived)
        lines += [f"Derived in `defaults/main.yml` (an inventory may override them): {names}.", ""]

    # Other entry points (tasks_from) that declare options of their own.
    for entry, spec in specs.items():
        options = (spec or {}).get("options") or {}
        if entry == "main" or not options or options == main_options:
            continue
        lines += [f"### {role}: entry point `{entry}`", ""]
        if spec.get("short_description"):
            lines += [cell(str(spec["short_description"])), ""]
        lines += header
        for name, option in options.items():
            lines += option_rows(name, option, defaults=defaults, globals_=globals_, secrets=secrets)
        lines.append("")
    return "\n".join(lines)


def render_variables(root: Path = ROOT) -> str:
    roles = role_order(root)
    globals_ = group_vars_all(root)
    secrets = set(globals_.get("whatsapp_secret_variables", ("", []))[1] or [])
    parts = [
        "# Role variables",
        "",
        "<!-- Generated by scripts/gen_docs.py: do not edit by hand. -->",
        f"Generated from each role's `meta/argument_specs.yml` and `defaults/main.yml` by "
        f"`scripts/gen_docs.py`; regenerate with `{REGENERATE}` (the static tests fail when "
        "this file is out of date). Roles are listed in deploy order (`whatsapp_roles`), then "
        "the others alphabetically.",
        "",
        "**default** is the value the role uses when the inventory sets nothing: its "
        "`defaults/main.yml` (what Ansible applies), else the spec's `default`; templated "
        "defaults are shown as their raw Jinja expression. A required variable has no role "
        "default: its value comes from `group_vars/all/` (shown with its file) or, for "
        "secrets, from the inventory (`inventories/<name>/group_vars/whatsapp/secrets.yml`). "
        "Every variable is checked against its spec before anything changes; override any of "
        "them in `inventories/<name>/group_vars/whatsapp/` or with `-e`.",
        "",
        "Roles: " + ", ".join(f"[{r}](#{r})" for r in roles) + ".",
        "",
    ]
    parts += [role_section(root, role, globals_, secrets) for role in roles]
    return "\n".join(parts).rstrip("\n") + "\n"


# --------------------------------------------------------------------------- Postman


def resolve(document: dict[str, Any], node: Any) -> Any:
    """Follow local $refs (recursively through a chain, not into children)."""
    seen = 0
    while isinstance(node, dict) and "$ref" in node:
        target: Any = document
        for part in node["$ref"].lstrip("#/").split("/"):
            target = target[part]
        extra = {k: v for k, v in node.items() if k != "$ref"}
        node = {**target, **extra} if extra and isinstance(target, dict) else target
        seen += 1
        if seen > 32:
            raise ValueError("$ref loop")
    return node


def merged(document: dict[str, Any], schema: Any) -> dict[str, Any]:
    """A schema with allOf merged and the first oneOf/anyOf alternative chosen."""
    schema = resolve(document, schema) or {}
    if "allOf" in schema:
        out: dict[str, Any] = {"type": "object", "properties": {}, "required": []}
        for raw in schema["allOf"]:
            part = merged(document, raw)
            out["properties"].update(part.get("properties", {}))
            out["required"] += [r for r in part.get("required", []) if r not in out["required"]]
        return out
    for key in ("oneOf", "anyOf"):
        if key in schema:
            return merged(document, schema[key][0])
    return schema


def named_examples(document: dict[str, Any]) -> dict[str, Any]:
    """Property name -> the first example any component schema gives a property of that name
    (so LoginRequest.phone borrows RegisterRequest.phone's E.164 example)."""
    found: dict[str, Any] = {}
    for schema in (document.get("components", {}).get("schemas") or {}).values():
        for name, raw in (merged(document, schema).get("properties") or {}).items():
            prop = merged(document, raw)
            if name not in found and ("example" in prop or prop.get("examples")):
                found[name] = prop["example"] if "example" in prop else prop["examples"][0]
    return found


FORMAT_EXAMPLES = {"uuid": NIL_UUID, "date-time": "2026-01-01T00:00:00Z", "uri": "https://example.com/"}
SCALAR_EXAMPLES = {"integer": 1, "number": 1.0, "boolean": True, "null": None}


def own_example(schema: dict[str, Any]) -> tuple[bool, Any]:
    """(True, value) when the schema itself gives one: example, examples, const, default, enum."""
    if "example" in schema:
        return True, copy.deepcopy(schema["example"])
    for key in ("examples", "enum"):
        if schema.get(key):
            return True, copy.deepcopy(schema[key][0])
    for key in ("const", "default"):
        if key in schema:
            return True, copy.deepcopy(schema[key])
    return False, None


def example_of(document: dict[str, Any], schema: Any, name: str = "value", depth: int = 0) -> Any:
    """An example value: the schema's own example, else one built from its required properties
    (all of its properties when it requires none)."""
    schema = merged(document, schema)
    found, value = own_example(schema)
    if found:
        return value
    kind = schema.get("type", "object")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object" or "properties" in schema:
        props = schema.get("properties", {}) if depth <= 6 else {}
        keys = [key for key in schema.get("required", []) if key in props] or list(props)
        return {
            key: FROM_VARIABLES.get(key) or example_of(document, props[key], key, depth + 1) for key in keys
        }
    if kind == "array":
        return [example_of(document, schema.get("items", {}), name, depth + 1)]
    return scalar_example(document, schema, kind, name)


def scalar_example(document: dict[str, Any], schema: dict[str, Any], kind: str, name: str) -> Any:
    """A number at its minimum, a boolean, null, or a string: another property's example of
    the same name, a value of its format, or the property's name fitted to its lengths."""
    if kind in ("integer", "number"):
        return schema.get("minimum", SCALAR_EXAMPLES[kind])
    if kind in SCALAR_EXAMPLES:
        return SCALAR_EXAMPLES[kind]
    borrowed = named_examples(document).get(name)
    if isinstance(borrowed, str):
        return borrowed
    if schema.get("format") in FORMAT_EXAMPLES:
        return FORMAT_EXAMPLES[schema["format"]]
    text = name.ljust(schema.get("minLength", 0), "x")
    return text[: schema.get("maxLength", len(text))]


def needs_auth(document: dict[str, Any], operation: dict[str, Any]) -> bool:
    security = operation.get("security", document.get("security", []))
    return any(requirement for requirement in security)


def returns_tokens(document: dict[str, Any], operation: dict[str, Any]) -> bool:
    for status, raw in operation.get("responses", {}).items():
        if not str(status).startswith("2"):
            continue
        response = resolve(document, raw)
        schema = (response.get("content") or {}).get("application/json", {}).get("schema")
        if schema and "access_token" in merged(document, schema).get("properties", {}):
            return True
    return False


def postman_request(
    document: dict[str, Any], path: str, method: str, path_item: dict[str, Any], operation: dict[str, Any]
) -> dict[str, Any]:
    params = [resolve(document, p) for p in path_item.get("parameters", [])]
    own = [resolve(document, p) for p in operation.get("parameters", [])]
    keyed = {(p["in"], p["name"]): p for p in params + own}  # the operation's win
    segments = [
        f":{segment[1:-1]}" if segment.startswith("{") and segment.endswith("}") else segment
        for segment in path.strip("/").split("/")
    ]
    url: dict[str, Any] = {
        "raw": "{{baseUrl}}/" + "/".join(segments),
        "host": ["{{baseUrl}}"],
        "path": segments,
    }
    variables = [
        {
            "key": p["name"],
            "value": str(p.get("example", example_of(document, p.get("schema", {}), p["name"]))),
            "description": p.get("description", ""),
        }
        for (where, _), p in keyed.items()
        if where == "path"
    ]
    if variables:
        url["variable"] = variables
    query = []
    for (where, _), p in keyed.items():
        if where != "query":
            continue
        value = str(p.get("example", example_of(document, p.get("schema", {}), p["name"])))
        entry = {
            "key": p["name"],
            "value": value.replace("+", "%2B"),
            "description": p.get("description", ""),
        }
        if not p.get("required"):
            entry["disabled"] = True
        query.append(entry)
    if query:
        url["query"] = query
        url["raw"] += "?" + "&".join(f"{q['key']}={q['value']}" for q in query if not q.get("disabled"))
        url["raw"] = url["raw"].rstrip("?")
    headers = [
        {
            "key": p["name"],
            "value": str(
                p["example"] if "example" in p else example_of(document, p.get("schema", {}), p["name"])
            ),
            **({} if p.get("required") else {"disabled": True}),
        }
        for (where, _), p in keyed.items()
        if where == "header"
    ]
    request: dict[str, Any] = {"method": method.upper(), "header": headers, "url": url}
    body = resolve(document, operation.get("requestBody"))
    content = (body or {}).get("content") or {}
    if body and "application/json" not in content:
        # A raw upload (media): the file is chosen in Postman, sent with its own type.
        request["header"].append({"key": "Content-Type", "value": next(iter(content))})
        request["body"] = {"mode": "file", "file": {"src": ""}}
    elif body:
        media = content.get("application/json", {})
        example = media["example"] if "example" in media else example_of(document, media.get("schema", {}))
        request["header"].append({"key": "Content-Type", "value": "application/json"})
        request["body"] = {
            "mode": "raw",
            "raw": json.dumps(example, indent=2, ensure_ascii=False),
            "options": {"raw": {"language": "json"}},
        }
    if needs_auth(document, operation):
        request["auth"] = {
            "type": "bearer",
            "bearer": [{"key": "token", "value": "{{accessToken}}", "type": "string"}],
        }
    else:
        request["auth"] = {"type": "noauth"}
    description = operation.get("summary", "")
    if operation.get("description"):
        description += "\n\n" + operation["description"].strip()
    request["description"] = description
    item: dict[str, Any] = {
        "name": operation.get("summary") or operation.get("operationId"),
        "request": request,
    }
    if returns_tokens(document, operation):
        item["event"] = [
            {
                "listen": "test",
                "script": {
                    "type": "text/javascript",
                    "exec": [
                        "// Keep the new tokens for the requests that need them.",
                        "if (pm.response.code < 300) {",
                        "  const body = pm.response.json();",
                        "  pm.collectionVariables.set('accessToken', body.access_token);",
                        "  pm.collectionVariables.set('refreshToken', body.refresh_token);",
                        "}",
                    ],
                },
            }
        ]
    return item


def render_postman(document: dict[str, Any]) -> dict[str, Any]:
    folders: dict[str, dict[str, Any]] = {
        tag["name"]: {"name": tag["name"], "description": tag.get("description", ""), "item": []}
        for tag in document.get("tags", [])
    }
    for path, path_item in document.get("paths", {}).items():
        for method in HTTP_METHODS:
            operation = path_item.get(method)
            if operation is None:
                continue
            tag = (operation.get("tags") or ["untagged"])[0]
            folder = folders.setdefault(tag, {"name": tag, "description": "", "item": []})
            folder["item"].append(postman_request(document, path, method, path_item, operation))
    servers = document.get("servers") or [{"url": "http://127.0.0.1"}]
    info = document.get("info", {})
    return {
        "info": {
            "name": info.get("title", "API"),
            "description": (
                f"Generated from docs/api/openapi.yaml (version {info.get('version', '')}) by "
                f"scripts/gen_docs.py; do not edit by hand. Register or log in first: those "
                "requests store accessToken (and refreshToken) in the collection variables."
            ),
            "schema": POSTMAN_SCHEMA,
        },
        "item": [folder for folder in folders.values() if folder["item"]],
        "variable": [
            {"key": "baseUrl", "value": servers[0]["url"], "type": "string"},
            {"key": "accessToken", "value": "", "type": "string"},
            {"key": "refreshToken", "value": "", "type": "string"},
        ],
    }


# The flow: (name, operationId, path values, body, expected status, user, lines run after it
# passes). Every request runs as `user` (its token variable); `{{...}}` are collection
# variables; the scripts keep what later steps need.
FLOW_PASSWORD = "a long test password"  # noqa: S105 - accounts the flow makes and deletes
FLOW: list[tuple[str, str, dict[str, str], Any, int, str | None, list[str]]] = [
    (
        "Ada registers",
        "register",
        {},
        {"phone": "{{adaPhone}}", "password": FLOW_PASSWORD, "display_name": "Ada (flow)"},
        201,
        None,
        [
            "const body = pm.response.json();",
            "pm.collectionVariables.set('adaToken', body.access_token);",
            "pm.collectionVariables.set('adaId', body.user.id);",
        ],
    ),
    (
        "Bob registers",
        "register",
        {},
        {"phone": "{{bobPhone}}", "password": FLOW_PASSWORD, "display_name": "Bob (flow)"},
        201,
        None,
        [
            "const body = pm.response.json();",
            "pm.collectionVariables.set('bobToken', body.access_token);",
            "pm.collectionVariables.set('bobRefresh', body.refresh_token);",
            "pm.collectionVariables.set('bobId', body.user.id);",
        ],
    ),
    (
        "Ada starts a chat with Bob",
        "createConversation",
        {},
        {"type": "direct", "member_id": "{{bobId}}"},
        201,
        "ada",
        [
            "const body = pm.response.json();",
            "pm.expect(body.members.map((m) => m.user_id)).to.include(pm.collectionVariables.get('bobId'));",
            "pm.collectionVariables.set('conversationId', body.id);",
        ],
    ),
    (
        "Ada sends a message",
        "sendMessage",
        {"id": "{{conversationId}}"},
        {"client_msg_id": "{{$guid}}", "body": "Hello from the flow"},
        201,
        "ada",
        [
            "const body = pm.response.json();",
            "pm.expect(body.seq).to.be.above(0);",
            "pm.collectionVariables.set('messageId', body.id);",
            "pm.collectionVariables.set('messageSeq', String(body.seq));",
        ],
    ),
    (
        "Bob reads the history",
        "listMessages",
        {"id": "{{conversationId}}"},
        None,
        200,
        "bob",
        [
            "const ids = pm.response.json().messages.map((m) => m.id);",
            "pm.expect(ids).to.include(pm.collectionVariables.get('messageId'));",
        ],
    ),
    (
        "Bob marks it read",
        "markRead",
        {"id": "{{conversationId}}"},
        {"up_to_seq": "{{messageSeq}}"},
        204,
        "bob",
        [],
    ),
    ("Bob reacts", "putReaction", {"id": "{{messageId}}"}, {"emoji": "\U0001f44d"}, 204, "bob", []),
    (
        "Ada edits her message",
        "editMessage",
        {"id": "{{messageId}}"},
        {"body": "Hello from the flow, edited"},
        200,
        "ada",
        ["pm.expect(pm.response.json().edited_at).to.be.a('string');"],
    ),
    (
        "Bob sees the last body and his reaction",
        "listMessages",
        {"id": "{{conversationId}}"},
        None,
        200,
        "bob",
        [
            "const id = pm.collectionVariables.get('messageId');",
            "const message = pm.response.json().messages.find((m) => m.id === id);",
            "pm.expect(message.body).to.eql('Hello from the flow, edited');",
            "const bob = pm.collectionVariables.get('bobId');",
            "pm.expect(message.reactions.map((r) => r.user_id)).to.eql([bob]);",
        ],
    ),
    ("Ada deletes it for everyone", "deleteMessage", {"id": "{{messageId}}"}, None, 204, "ada", []),
    (
        "Ada exports her data",
        "exportMe",
        {},
        None,
        200,
        "ada",
        ["pm.expect(pm.response.json().user.id).to.eql(pm.collectionVariables.get('adaId'));"],
    ),
    ("Ada deletes her account", "deleteMe", {}, {"password": FLOW_PASSWORD}, 204, "ada", []),
    ("Ada's profile is gone", "getUser", {"id": "{{adaId}}"}, None, 404, "bob", []),
    ("Bob logs out", "logout", {}, {"refresh_token": "{{bobRefresh}}"}, 204, "bob", []),
    (
        "Bob's refresh token is refused now",
        "refreshTokens",
        {},
        {"refresh_token": "{{bobRefresh}}"},
        401,
        None,
        [],
    ),
]
# Random phones per run (set before the first request), so the flow runs again on one stack.
FLOW_PRE_REQUEST = [
    "const phone = () => '+1555' + String(Math.floor(10000000 + Math.random() * 89999999));",
    "if (!pm.collectionVariables.get('adaPhone')) {",
    "  pm.collectionVariables.set('adaPhone', phone());",
    "  pm.collectionVariables.set('bobPhone', phone());",
    "}",
]


def render_postman_flow(document: dict[str, Any]) -> dict[str, Any]:
    operations = {
        op["operationId"]: (path, method)
        for path, item in document.get("paths", {}).items()
        for method, op in item.items()
        if method in HTTP_METHODS
    }
    items = []
    for name, operation_id, path_values, body, status, user, after in FLOW:
        path, method = operations[operation_id]
        segments = [
            path_values[segment[1:-1]] if segment.startswith("{") and segment.endswith("}") else segment
            for segment in path.strip("/").split("/")
        ]
        request: dict[str, Any] = {
            "method": method.upper(),
            "header": [],
            "url": {"raw": "{{baseUrl}}/" + "/".join(segments), "host": ["{{baseUrl}}"], "path": segments},
            "auth": {"type": "noauth"}
            if user is None
            else {
                "type": "bearer",
                "bearer": [{"key": "token", "value": f"{{{{{user}Token}}}}", "type": "string"}],
            },
        }
        if body is not None:
            raw = json.dumps(body, indent=2, ensure_ascii=False)
            raw = raw.replace('"{{messageSeq}}"', "{{messageSeq}}")  # a number in the body
            request["header"].append({"key": "Content-Type", "value": "application/json"})
            request["body"] = {"mode": "raw", "raw": raw, "options": {"raw": {"language": "json"}}}
        test = [
            f"pm.test({json.dumps(f'{name}: {status}')}, () => {{",
            f"  pm.response.to.have.status({status});",
            *(f"  {line}" for line in after),
            "});",
        ]
        items.append(
            {
                "name": name,
                "request": request,
                "event": [{"listen": "test", "script": {"type": "text/javascript", "exec": test}}],
            }
        )
    servers = document.get("servers") or [{"url": "http://127.0.0.1"}]
    return {
        "info": {
            "name": "WhatsApp-like API: the main flow",
            "description": (
                "Generated from docs/api/openapi.yaml by scripts/gen_docs.py; do not edit by hand. "
                "Run it against a deployed stack: "
                "`newman run docs/api/whatsapp.flow.postman_collection.json` "
                "(`--env-var baseUrl=https://...` for another address). Every request checks its status."
            ),
            "schema": POSTMAN_SCHEMA,
        },
        "event": [{"listen": "prerequest", "script": {"type": "text/javascript", "exec": FLOW_PRE_REQUEST}}],
        "item": items,
        "variable": [{"key": "baseUrl", "value": servers[0]["url"], "type": "string"}],
    }


def render_postman_text(root: Path = ROOT) -> str:
    document = load_yaml(root / OPENAPI)
    return json.dumps(render_postman(document), indent=2, ensure_ascii=False) + "\n"


# --------------------------------------------------------------------------- main


def outputs(root: Path = ROOT) -> dict[Path, str]:
    document = load_yaml(root / OPENAPI)
    flow = json.dumps(render_postman_flow(document), indent=2, ensure_ascii=False) + "\n"
    return {VARIABLES_MD: render_variables(root), POSTMAN: render_postman_text(root), POSTMAN_FLOW: flow}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 if a file is out of date")
    parser.add_argument("--root", type=Path, default=ROOT, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    stale = []
    for relative, text in outputs(args.root).items():
        path = args.root / relative
        current = path.read_text(encoding="utf-8") if path.is_file() else None
        if current == text:
            continue
        if args.check:
            stale.append(str(relative))
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
            print(f"wrote {relative}")
    if stale:
        for relative in stale:
            print(f"{relative} is out of date", file=sys.stderr)
        print(f"regenerate with: {REGENERATE}", file=sys.stderr)
        return 1
    if args.check:
        print("docs/variables.md and the Postman collections are up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
