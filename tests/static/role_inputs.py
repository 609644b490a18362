"""What each role reads: every variable its tasks, handlers, defaults and templates name.

Used by test_role_inputs.py. The YAML is walked for Jinja (strings with {{ or {%, and the
bare expressions of when/that/until/changed_when/failed_when), each parsed by Jinja with
every filter and test accepted, and `find_undeclared_variables` tells the names it reads.
Names a role defines itself (defaults, argument specs, register, set_fact, vars:, loop
variables) are its own.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jinja2
import yaml
from jinja2 import meta

# Bare Jinja expressions in Ansible's keywords.
BARE_KEYS = {"when", "changed_when", "failed_when", "until", "that"}
# Ansible's own names (magic variables, lookups and Jinja globals).
ANSIBLE_NAMES = {
    "hostvars", "groups", "group_names", "inventory_hostname", "inventory_hostname_short",
    "inventory_dir", "playbook_dir", "role_path", "role_name", "omit", "item", "lookup",
    "query", "q", "range", "dict", "lipsum", "cycler", "joiner", "namespace", "now", "undef",
    "true", "false", "none", "True", "False", "None", "discovered_interpreter_python",
}  # fmt: skip


class _AnyName(dict):
    """Every filter and test exists: only the names a template reads matter here."""

    def __contains__(self, key: object) -> bool:
        return True

    def __getitem__(self, key: str) -> Any:
        return lambda *args, **kwargs: None

    def get(self, key: str, default: Any = None) -> Any:
        return self[key]


_ENV = jinja2.Environment(extensions=["jinja2.ext.do", "jinja2.ext.loopcontrols"])  # noqa: S701 - parsed, never rendered
_ENV.filters = _AnyName()
_ENV.tests = _AnyName()


class _Loader(yaml.SafeLoader):
    pass


_Loader.add_multi_constructor("!", lambda loader, suffix, node: "")


def load(path: Path) -> Any:
    return yaml.load(path.read_text(encoding="utf-8"), Loader=_Loader)  # noqa: S506 - a SafeLoader subclass


_SET = re.compile(r"{%-?\s*set\s+([A-Za-z_][A-Za-z0-9_]*)\s*=")


def jinja_names(text: str) -> set[str]:
    """The names a template reads; a name it sets anywhere (Jinja's analysis misses a set
    inside an if) is its own."""
    with warnings.catch_warnings():  # Jinja's own note on regex escapes in string literals
        warnings.simplefilter("ignore", DeprecationWarning)
        parsed = _ENV.parse(text)
    return set(meta.find_undeclared_variables(parsed)) - set(_SET.findall(text))


def expressions(node: Any, key: str | None = None) -> Iterator[str]:
    if isinstance(node, dict):
        for k, v in node.items():
            yield from expressions(v, k)
    elif isinstance(node, list):
        for v in node:
            yield from expressions(v, key)
    elif isinstance(node, str):
        if key in BARE_KEYS:
            yield "{{ " + node + " }}"
        elif "{{" in node or "{%" in node:
            yield node


def defined_names(node: Any, out: set[str]) -> set[str]:
    """Names a task file defines: register, set_fact, vars:, loop_control variables."""
    if isinstance(node, dict):
        for k, v in node.items():
            if k == "register" and isinstance(v, str):
                out.add(v)
            elif k in ("ansible.builtin.set_fact", "set_fact") and isinstance(v, dict):
                out.update(name for name in v if name != "cacheable")
            elif k == "vars" and isinstance(v, dict):
                out.update(v)
            elif k == "loop_control" and isinstance(v, dict):
                out.update(v[var] for var in ("loop_var", "index_var") if var in v)
            defined_names(v, out)
    elif isinstance(node, list):
        for v in node:
            defined_names(v, out)
    return out


def declared_names(role: Path) -> set[str]:
    """What a role declares as its inputs: its defaults and every option of its argument specs."""
    names = set(load(role / "defaults/main.yml") or {})
    specs = role / "meta/argument_specs.yml"
    if specs.is_file():
        for entry in (load(specs) or {}).get("argument_specs", {}).values():
            names.update((entry or {}).get("options") or {})
    return names


def role_files(role: Path) -> list[Path]:
    files = [p for part in ("tasks", "handlers", "defaults") for p in sorted((role / part).glob("*.yml"))]
    return files + sorted(p for p in (role / "templates").rglob("*") if p.is_file())


def reads(role: Path) -> dict[str, set[str]]:
    """Each name the role reads and does not define itself -> the files that read it."""
    read: dict[str, set[str]] = {}
    local = declared_names(role)
    for path in role_files(role):
        if path.suffix == ".yml" and "templates" not in path.parts:
            doc = load(path)
            defined_names(doc, local)
            texts = list(expressions(doc))
        else:
            texts = [path.read_text(encoding="utf-8")]
        for text in texts:
            for name in jinja_names(text):
                read.setdefault(name, set()).add(str(path.relative_to(role.parent.parent)))
    return {
        name: files
        for name, files in read.items()
        if name not in local and name not in ANSIBLE_NAMES and not name.startswith("ansible_")
    }
