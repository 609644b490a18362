"""Leaving for good on a real PostgreSQL and Redis: the export holds everything the contract
lists; the deletion erases the bodies of the account's messages and their reactions, leaves
every conversation with admins handed over, removes the account with everything under it,
frees the phone, and is safe to run again; with MongoDB unreachable it answers 503 and
changes nothing; a wrong password is a 401.
"""

from __future__ import annotations

import uuid

import pytest
import redis
from real_backends import redis_url
from service_helpers import bearer, user_app

from services.chat import store as chat_store
from services.user import store
from services.user.context import user_context

PASSWORD = "correct horse battery staple"  # noqa: S105 - a test account


@pytest.fixture(scope="module")
def app(dsn):
    with redis_url() as url:
        app = user_app(WHATSAPP_POSTGRES_DSN=dsn, WHATSAPP_REDIS_URL=url)
        app.config["redis"] = redis.Redis.from_url(url)
        yield app
        with app.app_context():
            user_context().db.close()


def register(client, name: str) -> dict:
    phone = "+1999" + str(uuid.uuid4().int)[:10]
    answer = client.post(
        "/api/v1/auth/register", json={"phone": phone, "password": PASSWORD, "display_name": name}
    )
    assert answer.status_code == 201, answer.get_data(as_text=True)
    return answer.get_json() | {"phone": phone}


def post(conn, conversation_id: str, sender: str, body: str) -> str:
    (last,) = chat_store.allocate_seqs(conn, {conversation_id: 1}).values()
    message_id = uuid.uuid4().hex
    chat_store.insert_messages(
        conn,
        [
            {
                "id": message_id,
                "conversation_id": conversation_id,
                "seq": last,
                "sender_id": sender,
                "client_msg_id": uuid.uuid4().hex,
                "body": body,
                "ttl_seconds": None,
            }
        ],
    )
    return message_id


def test_the_export_holds_everything_the_contract_lists(app, conn):
    client = app.test_client()
    me, other = register(client, "Exporter"), register(client, "Friend")
    uid, oid = me["user"]["id"], other["user"]["id"]
    headers = bearer(me["access_token"])
    assert client.post("/api/v1/contacts", json={"user_id": oid}, headers=headers).status_code == 201
    assert client.post("/api/v1/blocks", json={"user_id": oid}, headers=headers).status_code == 201
    device = client.post("/api/v1/devices", json={"platform": "fcm", "token": "tok-1"}, headers=headers)
    assert device.status_code == 201, device.get_data(as_text=True)
    group = chat_store.create_group(conn, oid, "Book club", [uid])
    sent = post(conn, group, uid, "mine")
    post(conn, group, oid, "theirs")
    chat_store.delete_message(conn, post(conn, group, uid, "deleted later"), uid)

    answer = client.get("/api/v1/users/me/export", headers=headers)
    assert answer.status_code == 200, answer.get_data(as_text=True)
    assert answer.headers["Cache-Control"] == "no-store"
    export = answer.get_json()
    assert set(export) == {"user", "contacts", "blocks", "devices", "sessions", "conversations", "messages"}
    assert export["user"]["id"] == uid and export["user"]["phone"] == me["phone"]
    assert [c["id"] for c in export["contacts"]] == [oid] and [b["id"] for b in export["blocks"]] == [oid]
    assert [(d["platform"], d["token"]) for d in export["devices"]] == [("fcm", "tok-1")]
    assert [s["current"] for s in export["sessions"]] == [True]
    assert export["conversations"] == [{"id": group, "type": "group", "title": "Book club", "role": "member"}]
    assert [(m["id"], m["body"]) for m in export["messages"]] == [(sent, "mine")]  # not the deleted one
    assert client.get("/api/v1/users/me/export").status_code == 401


def test_deletion_erases_leaves_hands_over_and_frees_the_phone_and_runs_again(app, conn):
    client = app.test_client()
    admin, member, late = (register(client, n) for n in ("Leaving admin", "Staying", "Later"))
    aid, mid, lid = admin["user"]["id"], member["user"]["id"], late["user"]["id"]
    group = chat_store.create_group(conn, aid, "Handover", [mid])
    chat_store.add_member(conn, group, lid)
    direct, _ = chat_store.create_direct(conn, aid, mid)
    mine = post(conn, group, aid, "erase me")
    theirs = post(conn, direct, mid, "keep me")
    chat_store.set_reaction(conn, theirs, aid, "👍")  # the leaver's reaction on another's message
    chat_store.set_reaction(conn, mine, mid, "😢")  # and another's on the leaver's message
    conn.execute("INSERT INTO accounts.contacts (owner_id, contact_id) VALUES (%s, %s)", (mid, aid))

    with conn.transaction():
        events = store.delete_account(conn, aid)
    assert sorted((e["event"], str(e["conv_id"]), e["msg_id"]) for e in events) == sorted(
        [("erased", group, mine), ("left", group, None), ("left", direct, None)]
    )
    bodies = {
        r["id"]: (r["body"], r["deleted_at"] is not None)
        for r in conn.execute("SELECT id, body, deleted_at FROM conversations.messages").fetchall()
        if r["id"] in (mine, theirs)
    }
    assert bodies == {mine: (None, True), theirs: ("keep me", False)}
    assert conn.execute("SELECT count(*) AS n FROM conversations.reactions").fetchone()["n"] == 0
    roles = {str(r["user_id"]): r["role"] for r in chat_store.members_of(conn, group)}
    assert roles == {mid: "admin", lid: "member"}  # the longest-standing member took over
    assert [str(r["user_id"]) for r in chat_store.members_of(conn, direct)] == [mid]
    left = conn.execute(
        """
        SELECT (SELECT count(*) FROM accounts.users WHERE id = %(u)s)
             + (SELECT count(*) FROM accounts.sessions WHERE user_id = %(u)s)
             + (SELECT count(*) FROM accounts.contacts WHERE contact_id = %(u)s) AS n
        """,
        {"u": aid},
    ).fetchone()
    assert left["n"] == 0  # the user row, its sessions and others' contact entries of it
    with conn.transaction():
        assert store.delete_account(conn, aid) == []  # again: nothing left to do, no error
    again = client.post(
        "/api/v1/auth/register", json={"phone": admin["phone"], "password": PASSWORD, "display_name": "New"}
    )
    assert again.status_code == 201  # the phone is free
    assert again.get_json()["user"]["id"] != aid


def test_the_route_refuses_a_wrong_password_and_changes_nothing_when_mongodb_is_down(app, conn):
    client = app.test_client()
    me = register(client, "Careful")
    uid = me["user"]["id"]
    headers = bearer(me["access_token"])
    group = chat_store.create_group(conn, uid, "Mine", [])
    message = post(conn, group, uid, "still here")
    wrong = client.delete("/api/v1/users/me", json={"password": "not it"}, headers=headers)
    assert wrong.status_code == 401 and wrong.get_json()["error"]["code"] == "unauthorized"
    assert client.delete("/api/v1/users/me", json={}, headers=headers).status_code == 400
    down = client.delete("/api/v1/users/me", json={"password": PASSWORD}, headers=headers)
    assert down.status_code == 503 and down.get_json()["error"]["code"] == "unavailable", down.get_data(
        as_text=True
    )
    # Rolled back: the account, its membership and its message are as they were.
    assert store.password_hash_of(conn, uid) is not None
    assert [str(r["user_id"]) for r in chat_store.members_of(conn, group)] == [uid]
    row = conn.execute("SELECT body FROM conversations.messages WHERE id = %s", (message,)).fetchone()
    assert row == {"body": "still here"}
    assert client.get("/api/v1/users/me", headers=headers).status_code == 200
