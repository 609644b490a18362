"""Password hashing with bcrypt, and login checks that take the same time either way.

bcrypt reads at most 72 bytes (bcrypt 5 refuses longer input), and a 128-character
password can be 512 bytes of UTF-8; so bcrypt gets the base64 of the password's SHA-256
digest (44 bytes, no NUL), which keeps every character significant.

For an unknown phone number, `verify` still runs bcrypt against a dummy hash of the same
cost: without it, "no such user" would answer ~0.25 s sooner than "wrong password" and
reveal which phone numbers have accounts.

Every bcrypt computation (hash, check, dummy check) takes a slot of a bounded pool first.
gunicorn runs this service with gthread workers: each request has its own thread, and
bcrypt releases the GIL while it works, so the pool is a semaphore around the caller's own
thread, not a second set of threads. With fewer slots than gunicorn threads, a flood of
logins or registrations cannot occupy every thread: when the pool is full the request is
refused at once with 503 `unavailable` and `Retry-After` (waiting would only queue work
the client may give up on), and the other routes keep free threads and their latency.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import bcrypt

from services.common.errors import Unavailable

# What a refused client is told to wait: one bcrypt check lasts a fraction of a second.
POOL_FULL_RETRY_AFTER_SECONDS = 1


def _prepare(password: str) -> bytes:
    # surrogatepass: request models refuse lone surrogates, but hashing must never crash.
    return base64.b64encode(hashlib.sha256(password.encode("utf-8", "surrogatepass")).digest())


class PasswordCheckPool:
    """At most `size` password computations at once; `slot()` raises Unavailable when full."""

    def __init__(self, size: int):
        self.size = size
        self._slots = threading.BoundedSemaphore(size)
        self._lock = threading.Lock()
        self.in_use = 0

    @contextmanager
    def slot(self) -> Iterator[None]:
        if not self._slots.acquire(blocking=False):
            raise Unavailable(
                "too many password checks at once, try again shortly",
                headers={"Retry-After": str(POOL_FULL_RETRY_AFTER_SECONDS)},
            )
        with self._lock:
            self.in_use += 1
        try:
            yield
        finally:
            with self._lock:
                self.in_use -= 1
            self._slots.release()


class PasswordHasher:
    def __init__(self, cost: int, *, concurrent: int = 4):
        self.cost = cost
        self.pool = PasswordCheckPool(concurrent)
        # Made once at start-up with the real cost, so the dummy check costs what a real one does.
        self.dummy_hash = bcrypt.hashpw(_prepare(secrets.token_urlsafe(16)), bcrypt.gensalt(cost))

    def hash(self, password: str) -> str:
        """The bcrypt hash; Unavailable (503) when the pool is full."""
        with self.pool.slot():
            return bcrypt.hashpw(_prepare(password), bcrypt.gensalt(self.cost)).decode("ascii")

    def verify(self, password: str, stored_hash: str | None) -> bool:
        """True only for the right password; `stored_hash=None` (unknown user) is always False.
        Unavailable (503) when the pool is full, before any bcrypt work."""
        with self.pool.slot():
            if stored_hash is None:
                bcrypt.checkpw(_prepare(password), self.dummy_hash)
                return False
            try:
                return bcrypt.checkpw(_prepare(password), stored_hash.encode("ascii"))
            except ValueError:
                # A corrupt stored hash must not become a 500 or a way in.
                return False
