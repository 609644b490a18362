"""The contract's safety rules for conversations, through nginx on the deployed stack:
joining a group is not reading its past (history, catch-up, live frames, receipts, the
conversation list), a removed member gets 404, blocks apply to direct creation, group adds,
typing and receipts, a group has at most 256 members, and GET /conversations is paged.
"""

from __future__ import annotations

import time
import uuid

import psycopg
from accounts_helpers import DEPLOYED
from stack_client import User

# Frames that must not come are waited for this long (a frame that does come arrives in
# well under a second on this stack).
QUIET_S = 3.0


def error_code(answer) -> str:
    return answer.json()["error"]["code"]


def seqs(messages: list[dict]) -> list[int]:
    return [m["seq"] for m in messages]


def test_a_member_added_later_sees_only_what_follows_and_a_removed_one_gets_404():
    admin, old, late = User("Admin"), User("Old"), User("Late")
    gid = admin.group("Past", [old])["id"]
    with admin.socket() as a:
        for n in range(3):
            assert a.send_message(gid, f"before {n}")["type"] == "message.ack"
        # A receipt for the past, before Late joins.
        read = old.api.call("POST", f"/conversations/{gid}/read", {"up_to_seq": 3})
        assert read.status_code == 204, read.text
        added = admin.api.call("POST", f"/conversations/{gid}/members", {"user_id": late.id})
        assert added.status_code == 201, added.text

        # History: nothing from before; the list: no last message and no unread from before.
        assert late.history(gid) == []
        (entry,) = [
            c for c in late.api.call("GET", "/conversations").json()["conversations"] if c["id"] == gid
        ]
        assert entry["last_message"] is None and entry["unread_count"] == 0
        # Catch-up on connecting: nothing from before either.
        with late.socket() as ls:
            after = a.send_message(gid, "after joining")["message"]
            got = ls.wait_for(lambda f: f["type"] == "message.new")
            assert got["message"]["id"] == after["id"] and got["message"]["seq"] == 4
            # A receipt up to a seq Late never saw reaches the others, not Late.
            assert old.api.call("POST", f"/conversations/{gid}/read", {"up_to_seq": 3}).status_code == 204
            time.sleep(QUIET_S)
            assert [f["message"]["seq"] for f in ls.of_type("message.new")] == [4]
            assert all(f["up_to_seq"] > 3 for f in ls.of_type("receipt")), ls.of_type("receipt")
        assert seqs(late.history(gid)) == [4]
        assert [m["seq"] for m in old.history(gid)] == [1, 2, 3, 4]
        # A reconnect catches up from where Late's view starts: only seq 4 again, once.
        with late.socket() as again:
            again.wait_for(lambda f: f["type"] == "message.new" and f["message"]["seq"] == 4)
            time.sleep(1)
            assert [f["message"]["seq"] for f in again.of_type("message.new")] == [4]

        # Removed: the conversation is gone for Late, whatever it asks.
        removed = admin.api.call("DELETE", f"/conversations/{gid}/members/{late.id}")
        assert removed.status_code == 204
        for method, path in (
            ("GET", f"/conversations/{gid}"),
            ("GET", f"/conversations/{gid}/messages"),
        ):
            answer = late.api.call(method, path)
            assert answer.status_code == 404 and error_code(answer) == "not_found", (path, answer.text)
        sent = late.api.call("POST", f"/conversations/{gid}/messages", {"client_msg_id": "x", "body": "hi"})
        assert sent.status_code == 404, sent.text
        # Added again later: a new view, starting after what was said meanwhile.
        a.send_message(gid, "while away")
        assert (
            admin.api.call("POST", f"/conversations/{gid}/members", {"user_id": late.id}).status_code == 201
        )
        assert late.history(gid) == []


def test_blocks_apply_to_direct_creation_group_adds_typing_and_receipts():
    blocker, blocked, admin = User("Blocker"), User("Blocked"), User("GroupAdmin")
    gid = admin.group("Shared", [blocker, blocked])["id"]
    direct = blocker.direct_with(blocked)  # made before the block: it stays
    assert blocker.api.call("POST", "/blocks", {"user_id": blocked.id}).status_code == 201

    # The blocked user cannot start a direct conversation with the blocker (nor fetch the
    # existing one through creation), nor add the blocker to a group.
    refused = blocked.api.call("POST", "/conversations", {"type": "direct", "member_id": blocker.id})
    assert refused.status_code == 403 and error_code(refused) == "blocked", refused.text
    own_group = blocked.group("Mine", [])["id"]
    add = blocked.api.call("POST", f"/conversations/{own_group}/members", {"user_id": blocker.id})
    assert add.status_code == 403 and error_code(add) == "blocked", add.text
    with_blocker = blocked.api.call(
        "POST", "/conversations", {"type": "group", "title": "Trap", "member_ids": [blocker.id]}
    )
    assert with_blocker.status_code == 403 and error_code(with_blocker) == "blocked", with_blocker.text
    # The other way round is the blocker's choice.
    assert (
        blocker.api.call("POST", "/conversations", {"type": "direct", "member_id": blocked.id}).status_code
        == 200
    )

    with blocker.socket() as b, admin.socket() as a, blocked.socket() as x:
        time.sleep(1)  # both sockets are registered with the hub
        # A message in the shared group, so there is something to report receipts for.
        seq = a.send_message(gid, "hello all")["message"]["seq"]
        x.wait_for(lambda f: f["type"] == "message.new" and f["message"]["conversation_id"] == gid)
        for conversation in (gid, direct):
            x.send({"type": "typing", "conversation_id": conversation, "state": "start"})
        x.send({"type": "receipt", "conversation_id": gid, "up_to_seq": seq, "status": "delivered"})
        assert blocked.api.call("POST", f"/conversations/{gid}/read", {"up_to_seq": seq}).status_code == 204
        # The admin, who blocked nobody, gets them...
        a.wait_for(lambda f: f["type"] == "typing" and f["user_id"] == blocked.id)
        a.wait_for(lambda f: f["type"] == "receipt" and f["user_id"] == blocked.id and f["status"] == "read")
        time.sleep(QUIET_S)
        # ...the blocker none of them.
        from_blocked = [
            f for f in b.frames if f.get("user_id") == blocked.id and f["type"] in ("typing", "receipt")
        ]
        assert from_blocked == [], from_blocked
        # The blocker's own frames still reach the blocked user (a block is one-way).
        b.send({"type": "typing", "conversation_id": gid, "state": "start"})
        x.wait_for(lambda f: f["type"] == "typing" and f["user_id"] == blocker.id)


def _insert_users(count: int) -> list[str]:
    """Accounts written straight into PostgreSQL (registering 256 through the API would take
    minutes under the per-address limit): the group bound is what is tested here."""
    login = "svc_user"
    ids = [str(uuid.uuid4()) for _ in range(count)]
    with (
        psycopg.connect(
            host=DEPLOYED["whatsapp_publish_address"],
            port=DEPLOYED["postgres_port"],
            dbname=DEPLOYED["postgres_database"],
            user=login,
            password=DEPLOYED["postgres_passwords"][login],
            connect_timeout=5,
            autocommit=True,
        ) as conn,
        conn.cursor() as cur,
    ):
        cur.executemany(
            "INSERT INTO accounts.users (id, phone, display_name, password_hash) VALUES (%s, %s, %s, %s)",
            [(uid, "+1998" + str(uuid.uuid4().int)[:10], "Bulk", "!") for uid in ids],
        )
    return ids


def test_a_group_has_at_most_256_members_on_creation_and_on_add():
    admin = User("Big")
    others = _insert_users(257)
    too_many = admin.api.call(
        "POST", "/conversations", {"type": "group", "title": "Huge", "member_ids": others[:256]}
    )
    assert too_many.status_code == 409 and error_code(too_many) == "conflict", too_many.text
    created = admin.api.call(
        "POST", "/conversations", {"type": "group", "title": "Full", "member_ids": others[:255]}
    )
    assert created.status_code == 201, created.text
    gid = created.json()["id"]
    assert len(created.json()["members"]) == 256
    full = admin.api.call("POST", f"/conversations/{gid}/members", {"user_id": others[256]})
    assert full.status_code == 409 and error_code(full) == "conflict", full.text
    assert len(admin.api.call("GET", f"/conversations/{gid}").json()["members"]) == 256
    # Room again once one leaves.
    assert admin.api.call("DELETE", f"/conversations/{gid}/members/{others[0]}").status_code == 204
    assert (
        admin.api.call("POST", f"/conversations/{gid}/members", {"user_id": others[256]}).status_code == 201
    )


def test_the_conversation_list_is_paged_newest_activity_first():
    user = User("Pager")
    peers = [User(f"Peer{n}") for n in range(5)]
    made = [user.direct_with(p) for p in peers]
    with user.socket() as s:
        s.send_message(made[2], "now the newest")
    time.sleep(1)  # message_processor stores it: its time is the conversation's activity
    pages, before = [], None
    while True:
        query = "?limit=2" + (f"&before={before}" if before else "")
        answer = user.api.call("GET", f"/conversations{query}")
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert set(body) == {"conversations", "next_before"}
        assert len(body["conversations"]) <= 2
        pages.append([c["id"] for c in body["conversations"]])
        before = body["next_before"]
        if before is None:
            break
    assert [len(p) for p in pages] == [2, 2, 1]
    listed = [cid for page in pages for cid in page]
    assert sorted(listed) == sorted(made)  # every conversation once
    assert listed[0] == made[2]  # the one with the newest message first
    # The default page holds them all, in the same order; bad parameters are 400.
    whole = user.api.call("GET", "/conversations").json()
    assert [c["id"] for c in whole["conversations"]] == listed and whole["next_before"] is None
    for query in ("limit=0", "limit=201", "limit=x", "before=not-a-cursor", "before=" + "A" * 40):
        bad = user.api.call("GET", f"/conversations?{query}")
        assert bad.status_code == 400 and error_code(bad) == "validation_error", (query, bad.text)
