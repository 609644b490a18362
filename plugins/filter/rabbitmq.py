"""Filter plugin: RabbitMQ password hashes for definitions files.

RabbitMQ's rabbit_password_hashing_sha256 stores base64(salt + sha256(salt + password)) with
a 4-byte salt. The salt here is derived from the user name and password, so the rendered
definitions file is the same on every run (idempotent) and changes when a password does.
"""

from __future__ import annotations

import base64
import hashlib

DOCUMENTATION = r"""
name: rabbitmq_password_hash
short_description: RabbitMQ SHA-256 password hash with a deterministic salt
positional: _input, user
options:
  _input:
    description: The password.
    type: str
    required: true
  user:
    description: The user name (mixed into the salt).
    type: str
    required: true
"""


def rabbitmq_password_hash(password: str, user: str) -> str:
    salt = hashlib.sha256(f"{user}\0{password}".encode()).digest()[:4]
    return base64.b64encode(salt + hashlib.sha256(salt + password.encode()).digest()).decode()


class FilterModule:
    def filters(self):
        return {"rabbitmq_password_hash": rabbitmq_password_hash}
