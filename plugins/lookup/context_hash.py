"""Lookup plugin: a short content hash of a Docker build context folder.

Self-built images are tagged with it, so a role rebuilds an image exactly when its build
context changed (docker_image skips a build whose tag already exists) and a container is
re-created only then.
"""

from __future__ import annotations

import hashlib
import os

from ansible.errors import AnsibleLookupError
from ansible.plugins.lookup import LookupBase

DOCUMENTATION = r"""
name: context_hash
short_description: Hash of every file's path and content under a folder
description:
  - Returns the first 12 hex digits of a SHA-256 over the sorted relative paths and
    contents of the files under each given folder (symlinks followed); for a file, over
    its name and content.
options:
  _terms:
    description: Folders (or single files) on the controller.
    required: true
"""

DIGITS = 12


def tree_hash(folder: str) -> str:
    """Hash the relative path and content of every file under folder, in sorted order
    (a single file: its name and content)."""
    digest = hashlib.sha256()
    if os.path.isfile(folder):
        digest.update(os.path.basename(folder).encode() + b"\0")
        with open(folder, "rb") as handle:
            digest.update(hashlib.sha256(handle.read()).digest())
        return digest.hexdigest()[:DIGITS]
    if not os.path.isdir(folder):
        raise AnsibleLookupError(f"context_hash: {folder} is neither a folder nor a file")
    for root, dirs, files in os.walk(folder, followlinks=True):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        for name in sorted(files):
            if name.endswith(".pyc"):
                continue
            path = os.path.join(root, name)
            digest.update(os.path.relpath(path, folder).encode())
            digest.update(b"\0")
            with open(path, "rb") as handle:
                digest.update(hashlib.sha256(handle.read()).digest())
    return digest.hexdigest()[:DIGITS]


class LookupModule(LookupBase):
    def run(self, terms, variables=None, **kwargs):
        return [tree_hash(term) for term in terms]
