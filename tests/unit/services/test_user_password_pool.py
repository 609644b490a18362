"""The bounded password pool (services/user/passwords.py): at most `size` bcrypt
computations at once; when it is full, login and register answer 503 `unavailable` with
Retry-After at once, without touching the database, and other routes are not held up."""

from __future__ import annotations

import threading
import time
from contextlib import contextmanager

import pytest
from service_helpers import bearer, signer, store_untouched, user_app, user_env

from services.common.config import SettingsError
from services.common.errors import Unavailable
from services.user.context import user_context
from services.user.passwords import PasswordCheckPool, PasswordHasher
from services.user.settings import UserSettings


@contextmanager
def pool_held(pool: PasswordCheckPool, count: int):
    """`count` threads inside the pool (as long bcrypt checks would be) until the block ends."""
    release = threading.Event()
    inside = threading.Barrier(count + 1)

    def hold() -> None:
        with pool.slot():
            inside.wait()
            release.wait(10)

    threads = [threading.Thread(target=hold) for _ in range(count)]
    for t in threads:
        t.start()
    inside.wait(5)
    try:
        yield
    finally:
        release.set()
        for t in threads:
            t.join(5)


def test_the_pool_admits_its_size_and_refuses_the_next_at_once():
    pool = PasswordCheckPool(3)
    with pool_held(pool, 3):
        assert pool.in_use == 3
        started = time.perf_counter()
        with pytest.raises(Unavailable) as refused, pool.slot():
            pass
        assert time.perf_counter() - started < 0.05
        assert refused.value.status == 503 and refused.value.code == "unavailable"
        assert refused.value.headers["Retry-After"] == "1"
    assert pool.in_use == 0
    with pool.slot():
        assert pool.in_use == 1


def test_hash_and_verify_take_a_slot_and_give_it_back():
    hasher = PasswordHasher(cost=4, concurrent=1)
    stored = hasher.hash("correct horse")
    assert hasher.verify("correct horse", stored)
    assert not hasher.verify("wrong", None)
    assert hasher.pool.in_use == 0
    with pool_held(hasher.pool, 1):
        with pytest.raises(Unavailable):
            hasher.hash("x" * 8)
        with pytest.raises(Unavailable):
            hasher.verify("correct horse", stored)
        with pytest.raises(Unavailable):
            hasher.verify("correct horse", None)  # the dummy check too
    assert hasher.verify("correct horse", stored)


def test_a_full_pool_answers_register_and_login_503_before_the_database():
    app = user_app(WHATSAPP_PASSWORD_CHECKS_CONCURRENT="2")  # noqa: S106 - a pool size, not a password
    with app.app_context():
        ctx = user_context()
        pool = ctx.passwords.pool
        # The throttle is not under test here: Redis unreachable would only cost a timeout.
        ctx.login_throttle._unthrottled_until = float("inf")
    assert pool.size == 2
    client = app.test_client()
    with pool_held(pool, 2):
        started = time.perf_counter()
        registered = client.post(
            "/api/v1/auth/register",
            json={"phone": "+15550001111", "password": "long enough", "display_name": "A"},
        )
        elapsed = time.perf_counter() - started
        assert registered.status_code == 503, registered.get_data(as_text=True)
        assert registered.get_json()["error"]["code"] == "unavailable"
        assert registered.headers["Retry-After"] == "1"
        assert elapsed < 0.5
        assert store_untouched(app)
        # Other routes do not wait for the pool: the body check of a profile update needs
        # no password, so it answers (400 here) at once.
        token = signer().issue("4b1c6f62-62a5-4d3b-9d4c-0a7e3f9a9c11")
        started = time.perf_counter()
        other = client.patch("/api/v1/users/me", json={"about": 5}, headers=bearer(token))
        assert other.status_code == 400 and time.perf_counter() - started < 0.5


def test_login_with_a_full_pool_is_503_with_retry_after():
    app = user_app()
    with app.app_context():
        ctx = user_context()
        ctx.login_throttle._unthrottled_until = float("inf")

        class NoUser:
            """get_login's query finds no such phone."""

            @contextmanager
            def connection(self, timeout=None):  # noqa: ARG002 - the signature of Database.connection
                yield self

            def execute(self, *_a, **_k):
                return self

            def fetchone(self):
                return None

        ctx.db = NoUser()
        pool = ctx.passwords.pool
    client = app.test_client()
    with pool_held(pool, pool.size):
        answer = client.post("/api/v1/auth/login", json={"phone": "+15550001111", "password": "whatever"})
    assert answer.status_code == 503 and answer.headers["Retry-After"] == "1"
    assert (
        client.post("/api/v1/auth/login", json={"phone": "+15550001111", "password": "whatever"}).status_code
        == 401
    )


def test_settings_bound_the_pool_and_the_throttle():
    settings = UserSettings.from_env(user_env())
    assert settings.password_checks_concurrent == 4
    assert (settings.login_max_failures, settings.login_failure_window_seconds) == (10, 900)
    for name, bad in (
        ("WHATSAPP_PASSWORD_CHECKS_CONCURRENT", "0"),
        ("WHATSAPP_LOGIN_MAX_FAILURES", "0"),
        ("WHATSAPP_LOGIN_FAILURE_WINDOW_SECONDS", "lots"),
    ):
        with pytest.raises(SettingsError, match=name):
            UserSettings.from_env(user_env(**{name: bad}))
