"""Password hashing with bcrypt, and login checks that take the same time either way.

bcrypt reads at most 72 bytes (bcrypt 5 refuses longer input), and a 128-character
password can be 512 bytes of UTF-8; so bcrypt gets the base64 of the password's SHA-256
digest (44 bytes, no NUL), which keeps every character significant.

For an unknown phone number, `verify` still runs bcrypt against a dummy hash of the same
cost: without it, "no such user" would answer ~0.25 s sooner than "wrong password" and
reveal which phone numbers have accounts.
"""

from __future__ import annotations

import base64
import hashlib
import secrets

import bcrypt


def _prepare(password: str) -> bytes:
    # surrogatepass: request models refuse lone surrogates, but hashing must never crash.
    return base64.b64encode(hashlib.sha256(password.encode("utf-8", "surrogatepass")).digest())


class PasswordHasher:
    def __init__(self, cost: int):
        self.cost = cost
        # Made once at start-up with the real cost, so the dummy check costs what a real one does.
        self.dummy_hash = bcrypt.hashpw(_prepare(secrets.token_urlsafe(16)), bcrypt.gensalt(cost))

    def hash(self, password: str) -> str:
        return bcrypt.hashpw(_prepare(password), bcrypt.gensalt(self.cost)).decode("ascii")

    def verify(self, password: str, stored_hash: str | None) -> bool:
        """True only for the right password; `stored_hash=None` (unknown user) is always False."""
        if stored_hash is None:
            bcrypt.checkpw(_prepare(password), self.dummy_hash)
            return False
        try:
            return bcrypt.checkpw(_prepare(password), stored_hash.encode("ascii"))
        except ValueError:
            # A corrupt stored hash must not become a 500 or a way in.
            return False
