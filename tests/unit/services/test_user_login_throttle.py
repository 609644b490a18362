"""The per-phone login throttle (services/user/throttle.py) against a real Redis, and the
login route with it: the 11th failed attempt within the window is 429 with Retry-After,
whatever the password, and successes and unchecked attempts do not count.

Redis is the deployed stack's when it answers, else a throw-away redis-server
(real_backends.py); every test's keys live under a prefix of its own and are deleted.
"""

from __future__ import annotations

import logging
import threading
import uuid
from contextlib import contextmanager

import pytest
import redis
from real_backends import delete_prefix, redis_url
from service_helpers import user_app

from services.common.errors import RateLimited
from services.user.context import user_context
from services.user.passwords import PasswordHasher
from services.user.throttle import LoginThrottle, normalise_phone, throttle_secret

WINDOW = 900
SECRET = b"k" * 32
PHONE = "+15550001234"


class Clock:
    def __init__(self, now: float = 1_800_000_000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def redis_client():
    with redis_url() as url:
        client = redis.Redis.from_url(url, decode_responses=True, socket_timeout=3)
        yield client
        client.close()


@pytest.fixture
def prefix(redis_client):
    prefix = f"test:login_failures:{uuid.uuid4().hex}:"
    yield prefix
    delete_prefix(redis_client, prefix)


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def throttle(redis_client, prefix, clock):
    return LoginThrottle(
        redis_client, max_failures=10, window_seconds=WINDOW, secret=SECRET, key_prefix=prefix, clock=clock
    )


def fail(throttle: LoginThrottle, phone: str = PHONE, times: int = 1) -> None:
    for _ in range(times):
        throttle.begin(phone)  # left as it is: a failed attempt


def test_ten_failures_pass_and_the_eleventh_attempt_is_refused_for_the_window(throttle, clock):
    fail(throttle, times=10)
    with pytest.raises(RateLimited) as refused:
        throttle.begin(PHONE)
    assert refused.value.status == 429 and refused.value.code == "rate_limited"
    assert refused.value.headers["Retry-After"] == str(WINDOW)
    # Every attempt in the window is refused, and Retry-After counts down to the moment
    # the oldest failure leaves it.
    clock.now += 600
    with pytest.raises(RateLimited) as later:
        throttle.begin(PHONE)
    assert later.value.headers["Retry-After"] == str(WINDOW - 600)
    clock.now += WINDOW - 600
    throttle.begin(PHONE).discard()  # the window freed: an attempt goes through again


def test_the_window_slides_one_failure_at_a_time(throttle, clock):
    fail(throttle, times=5)
    clock.now += 100
    fail(throttle, times=5)
    clock.now += WINDOW - 100  # the first five have left the window, the last five have not
    fail(throttle, times=5)
    with pytest.raises(RateLimited) as refused:
        throttle.begin(PHONE)
    assert refused.value.headers["Retry-After"] == "100"


def test_refused_attempts_do_not_extend_the_lockout(throttle, clock):
    fail(throttle, times=10)
    for _ in range(20):
        with pytest.raises(RateLimited):
            throttle.begin(PHONE)
    clock.now += WINDOW
    throttle.begin(PHONE).discard()


def test_successes_and_discarded_attempts_do_not_count_and_do_not_reset(throttle):
    fail(throttle, times=9)
    for _ in range(5):
        throttle.begin(PHONE).discard()  # right password (or never checked)
    fail(throttle)  # the 10th failure
    with pytest.raises(RateLimited):
        throttle.begin(PHONE)


def test_phones_are_counted_apart_and_spellings_of_one_phone_together(throttle):
    fail(throttle, "+1 (555) 000-1234", times=10)
    with pytest.raises(RateLimited):
        throttle.begin(PHONE)
    throttle.begin("+15550009999").discard()
    assert normalise_phone(" +1 555 000 1234 ") == PHONE
    assert normalise_phone("alice") == "alice"


def test_redis_holds_no_phone_number_and_forgets_after_the_window(throttle, redis_client, prefix):
    fail(throttle, times=3)
    keys = list(redis_client.scan_iter(match=prefix + "*"))
    assert keys == [throttle.key_of(PHONE)]
    (key,) = keys
    assert "5550001234" not in key and len(key) == len(prefix) + 64
    assert redis_client.zcard(key) == 3
    assert 0 < redis_client.pttl(key) <= WINDOW * 1000
    # A different secret (signing key) gives a different key: the hash cannot be tried offline.
    other = LoginThrottle(redis_client, max_failures=10, window_seconds=WINDOW, secret=b"x" * 32)
    assert other.key_of(PHONE) != throttle.key_of(PHONE).removeprefix(prefix)
    assert throttle_secret("pem a") != throttle_secret("pem b")


def test_concurrent_guesses_cannot_pass_the_limit(throttle):
    admitted, refused = [], []
    lock = threading.Lock()
    start = threading.Barrier(40)

    def guess() -> None:
        start.wait()
        try:
            throttle.begin(PHONE)
        except RateLimited:
            with lock:
                refused.append(1)
        else:
            with lock:
                admitted.append(1)

    threads = [threading.Thread(target=guess) for _ in range(40)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert (len(admitted), len(refused)) == (10, 30)


def test_an_unreachable_redis_lets_logins_through_and_is_logged(caplog):
    dead = redis.Redis.from_url("redis://127.0.0.1:1/0", socket_timeout=0.2, socket_connect_timeout=0.2)
    throttle = LoginThrottle(dead, max_failures=1, window_seconds=WINDOW, secret=SECRET)
    with caplog.at_level(logging.WARNING, logger="services.user.throttle"):
        for _ in range(5):
            throttle.begin(PHONE).discard()
    # One warning: Redis is not asked again until storage_retry_seconds have passed.
    assert len([r for r in caplog.records if "not throttling" in r.getMessage()]) == 1


# ---- the login route ------------------------------------------------------------------------


class Rows:
    def __init__(self, row):
        self.row = row

    def fetchone(self):
        return self.row


class LoginDatabase:
    """`get_login`'s one query; `row` None is an unknown phone."""

    def __init__(self, row=None):
        self.row = row

    @contextmanager
    def connection(self, timeout=None):  # noqa: ARG002 - the signature of Database.connection
        yield self

    def execute(self, *_args, **_kwargs):
        return Rows(self.row)


@pytest.fixture
def app(throttle):
    app = user_app()
    with app.app_context():
        ctx = user_context()
        ctx.login_throttle = throttle
        hasher = ctx.passwords
        ctx.db = LoginDatabase(
            {
                "id": uuid.uuid4(),
                "phone": PHONE,
                "display_name": "A",
                "about": "",
                "avatar_url": None,
                "created_at": None,
                "password_hash": hasher.hash("the right password"),
            }
        )
    return app


def login(client, password: str, phone: str = PHONE):
    return client.post("/api/v1/auth/login", json={"phone": phone, "password": password})


def test_the_eleventh_failed_login_and_the_right_password_after_it_are_429(app):
    client = app.test_client()
    for _ in range(10):
        assert login(client, "wrong password").status_code == 401
    for password in ("wrong password", "the right password"):
        answer = login(client, password)
        assert answer.status_code == 429, answer.get_data(as_text=True)
        assert answer.get_json()["error"]["code"] == "rate_limited"
        assert int(answer.headers["Retry-After"]) == WINDOW


def test_unknown_phones_are_throttled_like_known_ones(app):
    with app.app_context():
        user_context().db = LoginDatabase(None)
    client = app.test_client()
    answers = [login(client, "whatever", phone="+15550007777").status_code for _ in range(11)]
    assert answers == [401] * 10 + [429]


def test_a_login_refused_by_a_full_password_pool_is_not_a_failure(app, throttle):
    with app.app_context():
        hasher: PasswordHasher = user_context().passwords
    client = app.test_client()
    held = [hasher.pool._slots.acquire(blocking=False) for _ in range(hasher.pool.size)]
    assert all(held)
    try:
        for _ in range(15):
            assert login(client, "wrong password").status_code == 503
    finally:
        for _ in held:
            hasher.pool._slots.release()
    assert throttle.redis.zcard(throttle.key_of(PHONE)) == 0
    assert login(client, "wrong password").status_code == 401
