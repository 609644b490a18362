"""Every repository path a Markdown file or a comment names exists (docs and comments that
point at moved or deleted files mislead the next reader).

A path is a word that starts with one of the repository's top-level folders (roles/,
services/, tests/...) and holds no placeholder (<role>, {{ var }}, *, $VAR). Read in
Markdown files whole, and in the other files only in comments (after #) and Python
docstrings. Inventory-relative paths (group_vars/whatsapp/...) may exist in any inventory,
and a file the user makes from an example (vault.yml) exists when its .example does.
"""

from __future__ import annotations

import ast
import re
import subprocess

from conftest import ROOT

TOP = (
    "roles",
    "services",
    "tests",
    "docs",
    "scripts",
    "playbooks",
    "plugins",
    "inventories",
    "benchmarks",
    "group_vars",
    ".config",
    ".ci",
)
TOPS = "|".join(map(re.escape, TOP))
PATH = re.compile(rf"(?<![\w./$-])((?:{TOPS})/[A-Za-z0-9_./-]*[A-Za-z0-9_/])")
PLACEHOLDER_AFTER = set("<{*$")
COMMENTED = {".py", ".yml", ".yaml", ".sh", ".j2", ".cfg", ".toml", ".txt"}


def tracked() -> list[str]:
    return subprocess.check_output(["git", "ls-files"], cwd=ROOT, text=True).split()


def docstrings(source: str) -> list[str]:
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return []
    nodes = [
        tree,
        *(n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)),
    ]
    return [doc for n in nodes if (doc := ast.get_docstring(n))]


def named_text(path: str) -> list[str]:
    """The parts of a file whose paths are checked."""
    file = ROOT / path
    if file.is_symlink() or not file.is_file():
        return []
    text = file.read_text(errors="replace")
    if file.suffix == ".md":
        return text.splitlines()
    if file.suffix not in COMMENTED and file.name != "run":
        return []
    lines = [line.split("#", 1)[1] for line in text.splitlines() if "#" in line]
    if file.suffix == ".py":
        lines += [line for doc in docstrings(text) for line in doc.splitlines()]
    return lines


def exists(path: str) -> bool:
    """The path, or the example a user copies it from (vault.yml from vault.yml.example)."""
    candidates = [ROOT / path]
    if path.startswith("group_vars/"):
        candidates += [inventory / path for inventory in (ROOT / "inventories").iterdir()]
    return any(c.exists() or c.with_name(c.name + ".example").exists() for c in candidates)


def names_of_missing_paths(files: list[str]) -> dict[str, list[str]]:
    missing: dict[str, list[str]] = {}
    for path in files:
        if path == "docs/api/api-contract.md":  # the contract's own examples, kept verbatim
            continue
        for line in named_text(path):
            for match in PATH.finditer(line):
                if line[match.end() : match.end() + 1] in PLACEHOLDER_AFTER:
                    continue
                named = match.group(1).rstrip(".")
                if not exists(named):
                    missing.setdefault(named, []).append(path)
    return missing


def test_every_path_named_in_docs_and_comments_exists():
    missing = names_of_missing_paths(tracked())
    assert not missing, "\n".join(
        f"{named} (named in {', '.join(sorted(set(where)))})" for named, where in missing.items()
    )


def test_the_check_finds_a_path_that_does_not_exist(tmp_path):
    # A copy of the finder's input with one stale reference: it must be reported.
    probe = "tests/static/_paths_probe.md"
    (ROOT / probe).write_text("See `roles/no_such_role/tasks/main.yml` and `roles/redis/tasks/main.yml`.\n")
    try:
        assert names_of_missing_paths([probe]) == {"roles/no_such_role/tasks/main.yml": [probe]}
    finally:
        (ROOT / probe).unlink()
