"""The build-context hash that tags self-built images changes exactly with the content."""

from __future__ import annotations

import importlib.util

import pytest
from conftest import ROOT

spec = importlib.util.spec_from_file_location("context_hash", ROOT / "plugins/lookup/context_hash.py")
context_hash = importlib.util.module_from_spec(spec)
spec.loader.exec_module(context_hash)


def make_tree(base, files: dict[str, str]):
    for rel, text in files.items():
        path = base / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return base


def test_same_content_same_hash(tmp_path):
    a = make_tree(tmp_path / "a", {"Dockerfile": "FROM x\n", "app/main.py": "print(1)\n"})
    b = make_tree(tmp_path / "b", {"app/main.py": "print(1)\n", "Dockerfile": "FROM x\n"})
    assert context_hash.tree_hash(str(a)) == context_hash.tree_hash(str(b))
    assert len(context_hash.tree_hash(str(a))) == context_hash.DIGITS


def test_content_rename_and_new_file_change_the_hash(tmp_path):
    base = make_tree(tmp_path / "ctx", {"Dockerfile": "FROM x\n"})
    first = context_hash.tree_hash(str(base))
    (base / "Dockerfile").write_text("FROM y\n")
    second = context_hash.tree_hash(str(base))
    (base / "extra.txt").write_text("")
    third = context_hash.tree_hash(str(base))
    (base / "extra.txt").rename(base / "other.txt")
    fourth = context_hash.tree_hash(str(base))
    assert len({first, second, third, fourth}) == 4


def test_bytecode_caches_do_not_count(tmp_path):
    base = make_tree(tmp_path / "ctx", {"app.py": "x = 1\n"})
    before = context_hash.tree_hash(str(base))
    make_tree(base, {"__pycache__/app.cpython-311.pyc": "junk", "mod.pyc": "junk"})
    assert context_hash.tree_hash(str(base)) == before


def test_missing_folder_is_a_clear_error(tmp_path):
    with pytest.raises(Exception, match="is neither a folder nor a file"):
        context_hash.tree_hash(str(tmp_path / "nope"))


def test_a_single_file_hashes_its_name_and_content(tmp_path):
    one = make_tree(tmp_path / "a", {"requirements.txt": "flask==3.0\n"}) / "requirements.txt"
    same = make_tree(tmp_path / "b", {"requirements.txt": "flask==3.0\n"}) / "requirements.txt"
    other = make_tree(tmp_path / "c", {"requirements.txt": "flask==3.1\n"}) / "requirements.txt"
    renamed = make_tree(tmp_path / "d", {"constraints.txt": "flask==3.0\n"}) / "constraints.txt"
    assert context_hash.tree_hash(str(one)) == context_hash.tree_hash(str(same))
    assert len({context_hash.tree_hash(str(p)) for p in (one, other, renamed)}) == 3
