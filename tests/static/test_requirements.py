"""requirements.yml names exactly the collections the project uses, at the versions the
pinned `ansible` package bundles (what this project's own machines run)."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import yaml
from conftest import ROOT

# A fully qualified module, filter or callback name: namespace.collection.name.
FQCN = re.compile(r"\b((?:community|ansible|kubernetes)\.[a-z_]+)\.[a-z_]+")


def used_collections() -> set[str]:
    sources = [ROOT / "site.yml", ROOT / "ansible.cfg"]
    for folder in ("roles", "playbooks"):
        sources += [p for p in (ROOT / folder).rglob("*.yml") if "molecule" not in p.parts]
    found = {m for path in sources for m in FQCN.findall(path.read_text(encoding="utf-8"))}
    return found - {"ansible.builtin"}


def listed() -> dict[str, str]:
    entries = yaml.safe_load((ROOT / "requirements.yml").read_text())["collections"]
    return {entry["name"]: entry["version"] for entry in entries}


def test_requirements_list_exactly_the_collections_used():
    assert set(listed()) == used_collections()


def test_each_version_is_the_one_the_pinned_ansible_bundles():
    bundled = Path(sys.prefix) / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}"
    bundled = bundled / "site-packages" / "ansible_collections"
    for name, version in listed().items():
        manifest = bundled / name.replace(".", "/") / "MANIFEST.json"
        assert manifest.is_file(), f"{name} is not in the pinned ansible package"
        assert json.loads(manifest.read_text())["collection_info"]["version"] == version, name
