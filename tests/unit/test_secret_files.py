"""roles/container/library/secret_files.py: a container's secrets as files, in one module run."""

from __future__ import annotations

import importlib.util
import os
import stat
import sys

import pytest
from conftest import ROOT

spec = importlib.util.spec_from_file_location(
    "secret_files", ROOT / "roles/container/library/secret_files.py"
)
secret_files = importlib.util.module_from_spec(spec)
sys.modules["secret_files"] = secret_files  # a dataclass looks its module up there
spec.loader.exec_module(secret_files)

AS_ROOT = os.geteuid() == 0


def write(tmp_path, files, check=False, **owner):
    wanted = secret_files.Wanted(
        root=str(tmp_path / "secrets"), path=str(tmp_path / "secrets" / "whatsapp-chat"), files=files, **owner
    )
    return secret_files.write_secret_files(wanted, check=check)


def mode_of(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_writes_every_file_with_its_mode_then_changes_nothing(tmp_path):
    first = write(tmp_path, {"postgres_dsn": "postgresql://a", "jwt_secret": "s3cret"})
    folder = tmp_path / "secrets" / "whatsapp-chat"
    assert first == {"changed": True, "written": ["jwt_secret", "postgres_dsn"], "removed": []}
    assert (folder / "jwt_secret").read_text() == "s3cret"
    assert mode_of(folder / "jwt_secret") == 0o400 and mode_of(folder) == 0o500
    assert mode_of(tmp_path / "secrets") == 0o700
    again = write(tmp_path, {"postgres_dsn": "postgresql://a", "jwt_secret": "s3cret"})
    assert again == {"changed": False, "written": [], "removed": []}


def test_a_new_value_is_rewritten_and_a_dropped_secret_removed(tmp_path):
    write(tmp_path, {"a": "1", "b": "2"})
    result = write(tmp_path, {"a": "changed"})
    folder = tmp_path / "secrets" / "whatsapp-chat"
    assert result == {"changed": True, "written": ["a"], "removed": ["b"]}
    assert sorted(os.listdir(folder)) == ["a"] and (folder / "a").read_text() == "changed"


def test_a_changed_mode_alone_is_corrected(tmp_path):
    write(tmp_path, {"a": "1"})
    os.chmod(tmp_path / "secrets" / "whatsapp-chat" / "a", 0o644)
    assert write(tmp_path, {"a": "1"})["written"] == ["a"]
    assert mode_of(tmp_path / "secrets" / "whatsapp-chat" / "a") == 0o400


def test_files_and_folder_belong_to_the_containers_user(tmp_path):
    assert AS_ROOT, "the test command runs as root (handing files to another user needs it)"
    write(tmp_path, {"a": "1"}, uid=999, gid=998)
    folder = tmp_path / "secrets" / "whatsapp-chat"
    assert (os.stat(folder).st_uid, os.stat(folder).st_gid) == (999, 998)
    assert (os.stat(folder / "a").st_uid, os.stat(folder / "a").st_gid) == (999, 998)
    assert write(tmp_path, {"a": "1"}, uid=999, gid=998)["changed"] is False


def test_check_mode_says_what_would_change_and_changes_nothing(tmp_path):
    assert write(tmp_path, {"a": "1"}, check=True) == {"changed": True, "written": ["a"], "removed": []}
    assert not (tmp_path / "secrets").exists()
    write(tmp_path, {"a": "1", "b": "2"})
    assert write(tmp_path, {"a": "new"}, check=True) == {"changed": True, "written": ["a"], "removed": ["b"]}
    assert (tmp_path / "secrets" / "whatsapp-chat" / "b").read_text() == "2"


@pytest.mark.parametrize("name", ["../escape", "", "a/b", ".."])
def test_a_name_that_is_not_a_plain_file_name_is_refused_before_anything_is_written(tmp_path, name):
    with pytest.raises(ValueError, match="plain name"):
        write(tmp_path, {"ok": "1", name: "x"})
    assert not (tmp_path / "secrets").exists()
