#!/usr/bin/python
"""Ansible module: one container's secrets as files in its own folder, in one call.

Replaces a file/file/copy-per-secret/find/remove chain (five module runs and one per
secret, about 3 s per container on every deploy) with one run on the Docker host. Only the
Python standard library, so it runs with any host's Python (a remote host has nothing else).
"""

from __future__ import annotations

import os
import stat
import tempfile
from dataclasses import dataclass

from ansible.module_utils.basic import AnsibleModule

DOCUMENTATION = r"""
module: secret_files
short_description: Write a container's secrets as files, remove the ones it no longer has
description:
  - Makes I(root) (mode 0700) and I(path) inside it, writes each of I(files) there
    (name -> value) with I(mode), I(owner) and I(group), and removes every other file of
    I(path). A file is rewritten only when its content, mode or owner differ, and then by
    an atomic rename. Values are never returned or shown in a diff.
options:
  root: {type: path, required: true, description: The folder that holds every container's secrets.}
  path: {type: path, required: true, description: This container's folder (inside I(root)).}
  files: {type: dict, required: true, no_log: true, description: File name -> content.}
  owner: {type: int, description: The files' and the folder's uid (omitted, left as they are).}
  group: {type: int, description: Their gid (omitted, left as it is).}
  mode: {type: raw, default: "0400", description: The files' mode.}
  dir_mode: {type: raw, default: "0500", description: The container's folder's mode.}
"""

RETURN = r"""
written:
  description: The files (names only) written, or whose mode or owner changed
  returned: always
  type: list
removed: {description: The files removed (names only), returned: always, type: list}
"""


def _mode(value) -> int:
    return int(str(value), 8) if not isinstance(value, int) else value


def _meta_differs(st: os.stat_result, mode: int, uid: int | None, gid: int | None) -> bool:
    """Whether a file's or folder's mode or owner is not the wanted one (None: any owner)."""
    return (
        (st.st_mode & 0o7777) != mode
        or (uid is not None and st.st_uid != uid)
        or (gid is not None and st.st_gid != gid)
    )


def _needs(path: str, content: bytes, mode: int, uid: int | None, gid: int | None) -> tuple[bool, bool]:
    """(content differs, only the metadata differs) for one file."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return True, False
    if not stat.S_ISREG(st.st_mode):
        return True, False
    with open(path, "rb") as handle:
        if handle.read() != content:
            return True, False
    return False, _meta_differs(st, mode, uid, gid)


def _chown(path: str, uid: int | None, gid: int | None) -> None:
    if uid is not None or gid is not None:
        os.chown(path, -1 if uid is None else uid, -1 if gid is None else gid)


def _folder(path: str, mode: int, uid: int | None, gid: int | None, check: bool) -> bool:
    changed = False
    if not os.path.isdir(path):
        changed = True
        if not check:
            os.makedirs(path, mode=mode, exist_ok=True)
    if check and changed:
        return True
    if _meta_differs(os.stat(path), mode, uid, gid):
        changed = True
        if not check:
            os.chmod(path, mode)
            _chown(path, uid, gid)
    return changed


@dataclass(frozen=True)
class Wanted:
    """One container's secret files: where, what, and with which mode and owner."""

    root: str
    path: str
    files: dict[str, str]
    mode: int = 0o400
    dir_mode: int = 0o500
    uid: int | None = None
    gid: int | None = None


def _replace(wanted: Wanted, target: str, content: bytes) -> None:
    """Write content to target by an atomic rename, with the wanted mode and owner."""
    fd, temporary = tempfile.mkstemp(dir=wanted.path, prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(content)
        os.chmod(temporary, wanted.mode)
        _chown(temporary, wanted.uid, wanted.gid)
        os.replace(temporary, target)
    except BaseException:
        if os.path.exists(temporary):
            os.unlink(temporary)
        raise


def _write_files(wanted: Wanted, check: bool) -> list[str]:
    written = []
    exists = os.path.isdir(wanted.path)  # only in check mode can it be missing
    for name, value in sorted(wanted.files.items()):
        target = os.path.join(wanted.path, name)
        content = value.encode()
        differs, meta = (
            _needs(target, content, wanted.mode, wanted.uid, wanted.gid) if exists else (True, False)
        )
        if not (differs or meta):
            continue
        written.append(name)
        if check:
            continue
        if differs:
            _replace(wanted, target, content)
        else:
            os.chmod(target, wanted.mode)
            _chown(target, wanted.uid, wanted.gid)
    return written


def _remove_others(wanted: Wanted, check: bool) -> list[str]:
    if not os.path.isdir(wanted.path):
        return []
    removed = []
    for entry in sorted(set(os.listdir(wanted.path)) - set(wanted.files)):
        full = os.path.join(wanted.path, entry)
        if os.path.isdir(full) and not os.path.islink(full):
            raise ValueError(f"{full} is a folder: not removed (secrets are files)")
        removed.append(entry)
        if not check:
            os.unlink(full)
    return removed


def write_secret_files(wanted: Wanted, check: bool = False) -> dict:
    """Do the work (check: only say what would change). Returns changed, written, removed."""
    for name in wanted.files:
        if not name or "/" in name or name in {".", ".."}:
            raise ValueError(f"a secret's file name must be a plain name, not {name!r}")
    changed = _folder(wanted.root, 0o700, None, None, check)
    # The deploy writes into the folder as root (its 0500 does not stop root) or, with no root
    # (Docker Desktop), as the folder's owner with mode 0755.
    changed = _folder(wanted.path, wanted.dir_mode, wanted.uid, wanted.gid, check) or changed
    written = _write_files(wanted, check)
    removed = _remove_others(wanted, check)
    return {"changed": changed or bool(written or removed), "written": written, "removed": removed}


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "root": {"type": "path", "required": True},
            "path": {"type": "path", "required": True},
            "files": {"type": "dict", "required": True, "no_log": True},
            "owner": {"type": "int"},
            "group": {"type": "int"},
            "mode": {"type": "raw", "default": "0400"},
            "dir_mode": {"type": "raw", "default": "0500"},
        },
        supports_check_mode=True,
    )
    p = module.params
    try:
        wanted = Wanted(
            root=p["root"],
            path=p["path"],
            files={str(k): "" if v is None else str(v) for k, v in p["files"].items()},
            mode=_mode(p["mode"]),
            dir_mode=_mode(p["dir_mode"]),
            uid=p["owner"],
            gid=p["group"],
        )
        result = write_secret_files(wanted, check=module.check_mode)
    except (OSError, ValueError) as error:
        module.fail_json(msg=f"writing the secrets of {p['path']} failed: {error}")
    module.exit_json(**result)


if __name__ == "__main__":
    main()
