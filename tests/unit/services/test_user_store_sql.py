"""The user service's SQL for push-target bounds and presence privacy, on a real PostgreSQL
(a throw-away database migrated with the project's runner, real_backends.py), and the
routes on top of it: 20 push targets at most (atomic, re-registering stays idempotent),
`last_seen_visibility` on PATCH/GET /users/me, GET /users/{id}/presence, and the watchers
chat and scheduled_jobs send presence frames to.
"""

from __future__ import annotations

import threading
import uuid
from datetime import timedelta

import psycopg
import pytest
from psycopg.rows import dict_row
from real_backends import redis_url, throwaway_database
from service_helpers import bearer, signer, user_app

from services.chat import store as chat_store
from services.common.times import utcnow
from services.message_processor import store as processor_store
from services.scheduled_jobs import presence as jobs_presence
from services.user import store
from services.user.context import user_context


@pytest.fixture(scope="module")
def dsn():
    with throwaway_database(["accounts"]) as dsn:
        yield dsn


def new_user(conn, name: str = "u") -> str:
    phone = "+1999" + str(uuid.uuid4().int)[:10]
    row = store.create_user(conn, phone=phone, display_name=name, password_hash="x")  # noqa: S106
    assert row is not None
    return str(row["id"])


def set_visibility(conn, user_id: str, visibility: str) -> None:
    row = store.update_profile(conn, user_id, {"last_seen_visibility": visibility})
    assert row is not None and row["last_seen_visibility"] == visibility


# ---- push targets ---------------------------------------------------------------------------


def test_twenty_push_targets_and_no_more_but_re_registering_stays_idempotent(conn):
    user = new_user(conn)
    ids = [store.add_device(conn, user, "fcm", f"token-{n}") for n in range(store.MAX_DEVICES_PER_USER)]
    assert len(set(ids)) == 20
    with pytest.raises(store.TooManyDevices):
        store.add_device(conn, user, "fcm", "token-20")
    with pytest.raises(store.TooManyDevices):
        store.add_device(conn, user, "apns", "token-0")  # another platform is another target
    # The same target again, at the limit: the same id, nothing added.
    assert store.add_device(conn, user, "fcm", "token-7") == ids[7]
    assert (
        conn.execute("SELECT count(*) AS n FROM accounts.devices WHERE user_id = %s", (user,)).fetchone()["n"]
        == 20
    )
    # Room again once one is removed.
    assert store.delete_device(conn, user, ids[0])
    assert store.add_device(conn, user, "fcm", "token-20") is not None
    # Another user's bound is their own.
    assert store.add_device(conn, new_user(conn), "fcm", "token-20") is not None


def test_the_bound_holds_under_concurrent_registrations(dsn, conn):
    user = new_user(conn)
    outcomes: list[str] = []
    lock = threading.Lock()
    start = threading.Barrier(30)

    def register(n: int) -> None:
        with psycopg.connect(dsn, autocommit=True, row_factory=dict_row) as own:
            start.wait()
            try:
                store.add_device(own, user, "webhook", f"https://hooks.example.com/{n}")
                outcome = "added"
            except store.TooManyDevices:
                outcome = "refused"
        with lock:
            outcomes.append(outcome)

    threads = [threading.Thread(target=register, args=(n,)) for n in range(30)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["added"] * 20 + ["refused"] * 10
    assert (
        conn.execute("SELECT count(*) AS n FROM accounts.devices WHERE user_id = %s", (user,)).fetchone()["n"]
        == 20
    )


def test_a_device_for_a_missing_user_is_none(conn):
    assert store.add_device(conn, str(uuid.uuid4()), "fcm", "t") is None


def new_session(conn, user: str) -> str:
    """A live session of the user (a sessions row and an unused refresh token of its family)."""
    sid, now = str(uuid.uuid4()), utcnow()
    store.insert_session(conn, sid, user, "phone", now)
    store.insert_refresh_token(
        conn, store.NewRefreshToken(sid, user, uuid.uuid4().hex * 2, now, now + timedelta(days=1))
    )
    return sid


def targets_of(conn, user: str) -> list[tuple[str, str | None]]:
    return [(t.device_id, t.session_id) for t in processor_store.push_targets(conn, [user]).get(user, [])]


def test_a_push_target_is_its_sessions_and_goes_when_that_session_is_revoked(conn):
    user = new_user(conn)
    phone, laptop = new_session(conn, user), new_session(conn, user)
    on_phone = str(store.add_device(conn, user, "fcm", "phone-token", session_id=phone))
    on_laptop = str(store.add_device(conn, user, "apns", "laptop-token", session_id=laptop))
    old = str(store.add_device(conn, user, "fcm", "from-before-sessions"))
    assert sorted(targets_of(conn, user)) == sorted([(on_phone, phone), (on_laptop, laptop), (old, None)])
    # The app logged in again on the phone (a new session): the same target, now the new one's.
    again = new_session(conn, user)
    assert str(store.add_device(conn, user, "fcm", "phone-token", session_id=again)) == on_phone
    assert (on_phone, again) in targets_of(conn, user)
    # Revoking a session removes its targets, and only its.
    assert store.revoke_sessions(conn, user, utcnow(), again) == [again]
    assert sorted(targets_of(conn, user)) == sorted([(on_laptop, laptop), (old, None)])
    store.revoke_refresh_family(conn, laptop, utcnow())
    assert targets_of(conn, user) == [(old, None)]
    # A session that is gone (pruned) cannot own a new target.
    with pytest.raises(store.SessionEnded):
        store.add_device(conn, user, "fcm", "late", session_id=str(uuid.uuid4()))
    assert processor_store.push_targets(conn, [new_user(conn)]) == {}


# ---- last_seen_visibility in the schema -------------------------------------------------------


def test_visibility_defaults_to_contacts_and_the_schema_refuses_other_values(conn):
    user = new_user(conn)
    assert store.get_user(conn, user, viewer=user)["last_seen_visibility"] == "contacts"
    with pytest.raises(psycopg.errors.CheckViolation):
        conn.execute("UPDATE accounts.users SET last_seen_visibility = 'friends' WHERE id = %s", (user,))
    # Changing it leaves the other fields alone.
    before = store.get_user(conn, user, viewer=user)
    after = store.update_profile(conn, user, {"last_seen_visibility": "nobody"})
    assert after is not None
    assert {k: after[k] for k in ("display_name", "about", "avatar_url")} == {
        k: before[k] for k in ("display_name", "about", "avatar_url")
    }


@pytest.fixture
def circle(conn):
    """target; `mutual` keeps target and target keeps mutual; `follower` keeps target only;
    `kept` is kept by target but does not keep target; `blocked` keeps target but is blocked."""
    people = {name: new_user(conn, name) for name in ("target", "mutual", "follower", "kept", "blocked")}
    target = people["target"]
    for watcher in ("mutual", "follower", "blocked"):
        assert store.add_contact(conn, people[watcher], target)
    for kept in ("mutual", "kept", "blocked"):
        assert store.add_contact(conn, target, people[kept])
    assert store.add_block(conn, target, people["blocked"])
    return people


@pytest.mark.parametrize("watchers_of", [chat_store.watchers_of, jobs_presence.watchers_of])
@pytest.mark.parametrize(
    ("visibility", "expected"),
    [("everyone", {"mutual", "follower"}), ("contacts", {"mutual"}), ("nobody", set())],
)
def test_presence_frames_go_only_to_watchers_the_visibility_allows(
    conn, circle, watchers_of, visibility, expected
):
    set_visibility(conn, circle["target"], visibility)
    names = {user_id: name for name, user_id in circle.items()}
    assert {names[w] for w in watchers_of(conn, circle["target"])} == expected


def test_get_presence_reports_visibility_and_whether_the_viewer_is_kept(conn, circle):
    target = circle["target"]
    row = store.get_presence(conn, target, viewer=circle["kept"])
    assert (row["last_seen_visibility"], row["viewer_is_contact"], row["blocked_viewer"]) == (
        "contacts",
        True,
        False,
    )
    row = store.get_presence(conn, target, viewer=circle["follower"])
    assert (row["viewer_is_contact"], row["blocked_viewer"]) == (False, False)
    assert store.get_presence(conn, target, viewer=circle["blocked"])["blocked_viewer"] is True


# ---- the routes on the real database ------------------------------------------------------------


@pytest.fixture(scope="module")
def app(dsn):
    with redis_url() as url:
        app = user_app(WHATSAPP_POSTGRES_DSN=dsn, WHATSAPP_REDIS_URL=url)
        yield app
        with app.app_context():
            user_context().db.close()


def as_user(user_id: str) -> dict[str, str]:
    return bearer(signer().issue(user_id))


def test_patch_and_get_me_carry_last_seen_visibility(app, conn):
    user = new_user(conn)
    client = app.test_client()
    me = client.get("/api/v1/users/me", headers=as_user(user))
    assert me.status_code == 200 and me.get_json()["last_seen_visibility"] == "contacts"
    for value in ("nobody", "everyone", "contacts"):
        changed = client.patch(
            "/api/v1/users/me", json={"last_seen_visibility": value}, headers=as_user(user)
        )
        assert changed.status_code == 200, changed.get_data(as_text=True)
        assert changed.get_json()["last_seen_visibility"] == value
        assert (
            client.get("/api/v1/users/me", headers=as_user(user)).get_json()["last_seen_visibility"] == value
        )
    for bad in ("friends", None, 1, ["nobody"]):
        refused = client.patch("/api/v1/users/me", json={"last_seen_visibility": bad}, headers=as_user(user))
        assert refused.status_code == 400, (bad, refused.get_data(as_text=True))
        assert refused.get_json()["error"]["code"] == "validation_error"
    # Only the owner sees the setting: another user's profile does not carry it.
    other = client.get(f"/api/v1/users/{user}", headers=as_user(new_user(conn)))
    assert other.status_code == 200 and "last_seen_visibility" not in other.get_json()


HIDDEN = {"online": None, "last_seen": None}


@pytest.mark.parametrize(
    ("visibility", "sees"),
    [
        ("everyone", {"target", "mutual", "follower", "kept", "stranger"}),
        ("contacts", {"target", "mutual", "kept"}),
        ("nobody", {"target"}),
    ],
)
def test_get_presence_shows_only_whom_the_visibility_allows(app, conn, circle, visibility, sees):
    people = {**circle, "stranger": new_user(conn, "stranger")}
    target = people["target"]
    set_visibility(conn, target, visibility)
    client = app.test_client()
    for name, viewer in people.items():
        answer = client.get(f"/api/v1/users/{target}/presence", headers=as_user(viewer))
        assert answer.status_code == 200, answer.get_data(as_text=True)
        body = answer.get_json()
        assert body["user_id"] == target
        if name == "blocked":
            # Blocked: the rule that was there before, whatever the visibility.
            assert (body["online"], body["last_seen"]) == (False, None)
        elif name in sees:
            assert body["online"] is False, (name, body)
        else:
            assert {k: body[k] for k in HIDDEN} == HIDDEN, (name, body)


def test_the_twenty_first_push_target_is_409(app, conn):
    user = new_user(conn)
    client = app.test_client()
    for n in range(20):
        answer = client.post(
            "/api/v1/devices", json={"platform": "apns", "token": f"apns-{n}"}, headers=as_user(user)
        )
        assert answer.status_code == 201, answer.get_data(as_text=True)
    refused = client.post(
        "/api/v1/devices", json={"platform": "apns", "token": "apns-20"}, headers=as_user(user)
    )
    assert refused.status_code == 409 and refused.get_json()["error"]["code"] == "conflict"
    again = client.post(
        "/api/v1/devices", json={"platform": "apns", "token": "apns-3"}, headers=as_user(user)
    )
    assert again.status_code == 201
