"""Lookup plugin: one hash over the values of every variable whose name matches a pattern.

site.yml's fast path keys each role on it: the same inventory, extra vars and group_vars
give the same hash, run after run; any changed value gives another (see
plugins/filter/deploy_state.py).
"""

from __future__ import annotations

import hashlib
import json
import re

from ansible.errors import AnsibleLookupError
from ansible.plugins.lookup import LookupBase

DOCUMENTATION = r"""
name: deploy_inputs
short_description: Hash of the values of the variables whose names match a pattern
description:
  - Returns the first 16 hex digits of a SHA-256 over the sorted names and templated values
    of the variables whose names match the regular expression, except those matching
    C(exclude). A value that cannot be templated (an undefined variable inside it) is
    hashed as its raw text, so the hash stays the same while the inputs do. Texts that
    are whole numbers or booleans (as extra vars arrive) hash as those numbers and booleans.
options:
  _terms:
    description: One regular expression on variable names.
    required: true
  exclude:
    description: Regular expression of names to leave out.
    type: str
    default: "^$"
"""

DIGITS = 16
# omit's placeholder carries a token that differs from run to run.
OMIT = re.compile(r"__omit_place_holder__[0-9a-f]+")
INTEGER = re.compile(r"-?[0-9]+")
BOOLEANS = {"true": True, "false": False, "yes": True, "no": False}


def normalise(value):
    """A value as the roles read it: `-e chat_replicas=1` arrives as the text "1", the
    inventory's `chat_replicas: 1` as a number; both mean one replica (the roles apply
    `| int` and `| bool`), so both hash alike and a scale back to the inventory's count
    finds the fast path again."""
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, str):
        text = value.strip()
        if INTEGER.fullmatch(text):
            return int(text)
        return BOOLEANS.get(text.lower(), value)
    if isinstance(value, dict):
        return {str(k): normalise(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [normalise(v) for v in value]
    return value


class LookupModule(LookupBase):
    def run(self, terms, variables=None, **kwargs):
        if variables is None or len(terms) != 1:
            raise AnsibleLookupError("deploy_inputs takes one name pattern and needs the variables")
        self.set_options(var_options=variables, direct=kwargs)
        pattern = re.compile(terms[0])
        exclude = re.compile(self.get_option("exclude"))
        digest = hashlib.sha256()
        for name in sorted(variables):
            if not pattern.search(name) or exclude.search(name):
                continue
            raw = variables[name]
            try:
                value = self._templar.template(raw)
            except Exception:  # noqa: BLE001 - any failure: hash what the inventory says
                value = raw
            text = json.dumps([name, normalise(value)], sort_keys=True, default=str)
            digest.update(OMIT.sub("__omit__", text).encode())
        return [digest.hexdigest()[:DIGITS]]
