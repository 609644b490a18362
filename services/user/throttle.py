"""Failed logins per phone number, counted in Redis whatever the client's address.

A phone may have `max_failures` failed logins within `window_seconds`; the next attempt,
and every one after it until the oldest counted failure leaves the window, is answered
429 `rate_limited` with `Retry-After` (the seconds until an attempt is allowed again),
even with the right password. Unknown phones are counted like known ones, so the 429
reveals nothing about which numbers have accounts.

The record is a sliding log: a sorted set per phone, one member per attempt, scored by
its time in milliseconds. One Lua script, atomic against every other login of any
replica, drops the members older than the window and either refuses the attempt or adds
it. The attempt is added *before* the password is checked: concurrent guesses cannot get
past the limit between a check and a record. A successful login (or an attempt that never
reached the password check: 503, a backend error) then removes its own member, so only
failures remain. A success does not clear the earlier failures: otherwise the owner's
own logins would hand whoever is guessing a fresh budget each time.

The set holds at most `max_failures` members (a refused attempt adds none) and expires a
window after its last one. Its key is an HMAC of the normalised phone, keyed from the
service's signing key, so Redis never holds phone numbers, not even as plain hashes that
could be tried one number at a time.

Redis unreachable: logins pass unthrottled (logged) rather than failing, as the gateway's
rate limits do, and Redis is tried again after `storage_retry_seconds` so a hung Redis does
not cost every login a socket timeout.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import math
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

import redis

from services.common.errors import RateLimited

log = logging.getLogger(__name__)

KEY_PREFIX = "login_failures:"
PHONE_CHARACTERS = frozenset("+0123456789")

# KEYS[1]: the phone's log. ARGV: now (ms), window (ms), max failures, this attempt's member.
# Returns {1, 0} when the attempt is recorded (go on), {0, ms until one is allowed} when refused.
ATTEMPT_SCRIPT = """
local now = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local limit = tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
local count = redis.call('ZCARD', KEYS[1])
if count >= limit then
    local oldest = redis.call('ZRANGE', KEYS[1], count - limit, count - limit, 'WITHSCORES')
    return {0, tonumber(oldest[2]) + window - now}
end
redis.call('ZADD', KEYS[1], now, ARGV[4])
redis.call('PEXPIRE', KEYS[1], window)
return {1, 0}
"""


def normalise_phone(phone: str) -> str:
    """`+1 (555) 000-1234` and `+15550001234` count as one phone: only `+` and digits stay.
    A string without any (not a phone at all) is kept as it was, trimmed."""
    kept = "".join(c for c in phone if c in PHONE_CHARACTERS)
    return kept or phone.strip()


def throttle_secret(signing_key_pem: str) -> bytes:
    """The HMAC key of the phone hashes, derived from the service's private signing key
    (a secret only this service holds); a new signing key starts the counts afresh."""
    return hashlib.sha256(b"whatsapp-login-throttle\0" + signing_key_pem.encode("utf-8")).digest()


@dataclass
class LoginAttempt:
    """One admitted attempt. Leave it as it is on a wrong password (it is the failure);
    call `discard()` when the login succeeded or never reached the password check."""

    throttle: LoginThrottle | None
    key: str
    member: str

    def discard(self) -> None:
        if self.throttle is not None:
            self.throttle.forget(self.key, self.member)
            self.throttle = None


class LoginThrottle:
    def __init__(  # noqa: PLR0913 - keyword-only tunables, named at the call
        self,
        client: redis.Redis,
        *,
        max_failures: int,
        window_seconds: float,
        secret: bytes,
        key_prefix: str = KEY_PREFIX,
        storage_retry_seconds: float = 5.0,
        clock: Callable[[], float] = time.time,
    ):
        self.redis = client
        self.max_failures = max_failures
        self.window_ms = int(window_seconds * 1000)
        self.secret = secret
        self.key_prefix = key_prefix
        self.storage_retry_seconds = storage_retry_seconds
        self.clock = clock
        self._script = client.register_script(ATTEMPT_SCRIPT)
        self._unthrottled_until = 0.0

    def key_of(self, phone: str) -> str:
        digest = hmac.new(self.secret, normalise_phone(phone).encode("utf-8", "surrogatepass"), "sha256")
        return self.key_prefix + digest.hexdigest()

    def begin(self, phone: str) -> LoginAttempt:
        """Admit one attempt for `phone` (recorded as a failure until discarded), or raise
        RateLimited with the seconds until the phone may try again."""
        key, member = self.key_of(phone), uuid.uuid4().hex
        if time.monotonic() < self._unthrottled_until:
            return LoginAttempt(None, key, member)
        now_ms = int(self.clock() * 1000)
        try:
            admitted, wait_ms = self._script(
                keys=[key], args=[now_ms, self.window_ms, self.max_failures, member]
            )
        except redis.RedisError as exc:
            self._storage_failed(exc)
            return LoginAttempt(None, key, member)
        if not int(admitted):
            raise RateLimited(
                "too many failed logins for this phone number, try again later",
                retry_after=max(1, math.ceil(int(wait_ms) / 1000)),
            )
        return LoginAttempt(self, key, member)

    def forget(self, key: str, member: str) -> None:
        try:
            self.redis.zrem(key, member)
        except redis.RedisError as exc:
            # One attempt too many stays counted until it leaves the window: harmless.
            self._storage_failed(exc)

    def _storage_failed(self, exc: redis.RedisError) -> None:
        self._unthrottled_until = time.monotonic() + self.storage_retry_seconds
        log.warning(
            "login throttle storage unavailable, not throttling for %.0f s: %s: %s",
            self.storage_retry_seconds,
            type(exc).__name__,
            exc,
        )
