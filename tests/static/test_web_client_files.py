"""Layer 1, static: the web client (roles/nginx/files/web) stays within nginx's CSP.

The CSP allows only the stack's own origin and no inline script or style, so: every
resource index.html names is a same-origin path that exists, nothing names an http(s)://
URL, no inline script, style or event handler; the JavaScript modules import only each
other by relative path, put no user text into innerHTML, and each one parses (node --check).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest
from conftest import ROOT

WEB = ROOT / "roles" / "nginx" / "files" / "web"
INDEX = WEB / "index.html"
MODULES = sorted((WEB / "js").glob("*.js"))
STYLES = sorted((WEB / "css").glob("*.css"))
ABSOLUTE_URL = re.compile(r"\b(?:https?|wss?|ftp):/{2}", re.I)
IMPORT = re.compile(
    r"""(?:^|;|\s)(?:import|export)\s[^'"`;]*?\sfrom\s*(['"])([^'"]+)\1|import\s*\(\s*(['"])([^'"]+)\3"""
)
BARE_IMPORT = re.compile(r"""^\s*import\s*(['"])([^'"]+)\1""", re.M)


class PageParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.references: list[tuple[str, str, str]] = []  # (tag, attribute, value)
        self.inline_scripts = 0
        self.style_tags = 0
        self.style_attributes: list[str] = []
        self.handlers: list[str] = []
        self.ids: list[str] = []
        self.labels_for: list[str] = []
        self.controls: list[str] = []
        self._in_script_without_src = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        for name, value in attrs:
            if name in ("src", "href", "action", "formaction", "poster", "data") and value is not None:
                self.references.append((tag, name, value))
            if name == "style":
                self.style_attributes.append(tag)
            if name.startswith("on"):
                self.handlers.append(f"{tag}[{name}]")
        if "id" in values:
            self.ids.append(values["id"] or "")
        if tag == "label" and values.get("for"):
            self.labels_for.append(values["for"] or "")
        if tag in ("input", "select", "textarea"):
            self.controls.append(values.get("id") or "")
        if tag == "script":
            self._in_script_without_src = "src" not in values
            if values.get("type") != "module":
                self.inline_scripts += 1  # classic scripts are not used either
        if tag == "style":
            self.style_tags += 1

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_script_without_src = False

    def handle_data(self, data: str) -> None:
        if self._in_script_without_src and data.strip():
            self.inline_scripts += 1


@pytest.fixture(scope="module")
def page() -> PageParser:
    parser = PageParser()
    parser.feed(INDEX.read_text())
    return parser


def test_the_client_has_its_files():
    assert INDEX.is_file()
    assert {p.name for p in MODULES} >= {"app.js", "api.js", "socket.js", "store.js"}
    assert STYLES


def test_index_references_only_same_origin_files_that_exist(page: PageParser):
    assert page.references, "index.html references nothing: the parser found no src/href"
    for tag, attribute, value in page.references:
        assert not ABSOLUTE_URL.search(value) and not value.startswith("//"), f"{tag} {attribute}={value}"
        if value.startswith("#"):
            assert value[1:] in page.ids, f"{tag} {attribute}={value}: no such id"
            continue
        assert value.startswith("/"), f"{tag} {attribute}={value}: use a path from the site root"
        assert (WEB / value.lstrip("/")).is_file(), f"{tag} {attribute}={value}: no such file in web/"
    assert not ABSOLUTE_URL.search(INDEX.read_text())


def test_index_has_nothing_the_csp_would_block(page: PageParser):
    assert page.inline_scripts == 0, "inline or classic script: the CSP allows only script files"
    assert page.style_tags == 0 and page.style_attributes == [], (
        "inline style: the CSP allows only style files"
    )
    assert page.handlers == [], f"inline event handlers: {page.handlers}"


def test_every_form_control_has_a_label(page: PageParser):
    assert page.controls
    unlabelled = [c for c in page.controls if c not in page.labels_for]
    assert unlabelled == [], f"form controls without <label for>: {unlabelled}"
    assert len(page.ids) == len(set(page.ids)), "duplicate ids in index.html"


@pytest.mark.parametrize("module", MODULES, ids=lambda p: p.name)
def test_modules_import_only_each_other_and_name_no_remote_url(module: Path):
    source = module.read_text()
    assert not ABSOLUTE_URL.search(source), f"{module.name} names an absolute URL"
    specifiers = [m.group(2) or m.group(4) for m in IMPORT.finditer(source)]
    specifiers += [m.group(2) for m in BARE_IMPORT.finditer(source)]
    for spec in specifiers:
        assert spec.startswith("./") and spec.endswith(".js"), f"{module.name} imports {spec!r}"
        assert (module.parent / spec).resolve().is_file(), f"{module.name} imports missing {spec}"
    for risky in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function"):
        assert risky not in source, f"{module.name} uses {risky}: user text must go through textContent"


def test_the_entry_module_is_what_index_loads(page: PageParser):
    scripts = [v for tag, attr, v in page.references if tag == "script" and attr == "src"]
    assert scripts == ["/js/app.js"]


@pytest.mark.parametrize("stylesheet", STYLES, ids=lambda p: p.name)
def test_stylesheets_load_nothing_from_elsewhere(stylesheet: Path):
    source = stylesheet.read_text()
    assert not ABSOLUTE_URL.search(source)
    assert "@import" not in source


def test_every_module_parses(tmp_path: Path):
    node = shutil.which("node")
    assert node, "node is needed for this check (scripts/test.sh installs nodejs)"
    # package.json makes node read the copies as ES modules, whatever its version.
    (tmp_path / "package.json").write_text('{"type": "module"}\n')
    for module in MODULES:
        copy = tmp_path / module.name
        copy.write_text(module.read_text())
        result = subprocess.run([node, "--check", str(copy)], capture_output=True, text=True, check=False)
        assert result.returncode == 0, f"{module.name}: {result.stderr}"


def test_the_parse_check_catches_a_broken_module(tmp_path: Path):
    node = shutil.which("node")
    assert node
    (tmp_path / "package.json").write_text('{"type": "module"}\n')
    broken = tmp_path / "broken.js"
    broken.write_text('import { x } from "./other.js";\nexport const y = ;\n')
    result = subprocess.run([node, "--check", str(broken)], capture_output=True, text=True, check=False)
    assert result.returncode != 0 and "SyntaxError" in result.stderr
