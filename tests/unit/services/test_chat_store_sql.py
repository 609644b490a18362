"""The chat service's SQL for the conversation safety rules, on a real PostgreSQL (a
throw-away database migrated with the project's runner, real_backends.py): a member added
later starts its view, receipts and unread count at the conversation's last seq, a group
holds 256 members at most (also under concurrent adds), blocks are read one way, and the
conversation list pages by (activity, id) without gaps or repeats.
"""

from __future__ import annotations

import threading
import uuid

import psycopg
import pytest
from psycopg.rows import dict_row
from test_chat_units import chat_env, token

from services.chat import create_app, store
from services.chat.settings import ChatSettings
from services.common.members import members_by_conversation, seeing


def new_users(conn, count: int) -> list[str]:
    ids = [str(uuid.uuid4()) for _ in range(count)]
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO accounts.users (id, phone, display_name, password_hash) VALUES (%s, %s, 'u', 'x')",
            [(uid, "+1999" + str(uuid.uuid4().int)[:10]) for uid in ids],
        )
    return ids


def record(conn, conversation_id: str, sender: str, **fields):
    """One message recorded as the accept path records it (the next seq, fresh ids); `fields`
    set or override its columns (body, ttl_seconds, encrypted, media_id...). Its row."""
    (last,) = store.allocate_seqs(conn, {conversation_id: 1}).values()
    message = {
        "id": uuid.uuid4().hex,
        "conversation_id": conversation_id,
        "seq": last,
        "sender_id": sender,
        "client_msg_id": uuid.uuid4().hex,
        "body": f"m{last}",
        "ttl_seconds": None,
        **fields,
    }
    (row,) = store.insert_messages(conn, [message])
    return row


def post(conn, conversation_id: str, sender: str, n: int) -> None:
    """n accepted messages, as the accept path records them."""
    for _ in range(n):
        record(conn, conversation_id, sender)


def test_a_member_added_later_starts_at_the_last_seq(conn):
    admin, early, late = new_users(conn, 3)
    gid = store.create_group(conn, admin, "g", [early])
    post(conn, gid, admin, 3)
    assert store.add_member(conn, gid, late) is True
    assert store.add_member(conn, gid, late) is False  # already a member: nothing changes
    mine = store.get_conversation(conn, gid, late)
    assert (mine["visible_after_seq"], mine["delivered_seq"], mine["read_seq"]) == (3, 3, 3)
    assert store.get_conversation(conn, gid, early)["visible_after_seq"] == 0
    (entry,) = store.list_conversations(conn, late, limit=10)
    assert entry["lm_id"] is None and entry["unread_count"] == 0
    post(conn, gid, admin, 1)
    (entry,) = store.list_conversations(conn, late, limit=10)
    assert entry["lm_seq"] == 4 and entry["unread_count"] == 1
    # message_processor fans a message out only to members whose view holds its seq.
    marks = members_by_conversation(conn, [gid])[gid]
    assert marks == {admin: 0, early: 0, late: 3}
    assert sorted(seeing(marks, 3)) == sorted([admin, early]) and sorted(seeing(marks, 4)) == sorted(marks)


def test_a_group_holds_256_members_even_under_concurrent_adds(dsn, conn):
    admin, *others = new_users(conn, 300)
    gid = store.create_group(conn, admin, "big", others[:250])
    outcomes: list[str] = []
    lock = threading.Lock()
    start = threading.Barrier(20)

    def add(user: str) -> None:
        with psycopg.connect(dsn, row_factory=dict_row) as own:
            start.wait()
            try:
                with own.transaction():
                    outcome = "added" if store.add_member(own, gid, user) else "present"
            except store.GroupFull:
                outcome = "full"
        with lock:
            outcomes.append(outcome)

    threads = [threading.Thread(target=add, args=(u,)) for u in others[250:270]]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["added"] * 5 + ["full"] * 15
    assert len(store.members_of(conn, gid)) == store.MAX_GROUP_MEMBERS == 256


def test_blocks_are_read_one_way(conn):
    a, b, c = new_users(conn, 3)
    conn.execute("INSERT INTO accounts.blocks (blocker_id, blocked_id) VALUES (%s, %s)", (a, b))
    assert store.blockers_among(conn, b, [a, c]) == {a}
    assert store.blockers_among(conn, a, [b, c]) == set()
    assert store.blockers_of(conn, b) == {a}
    assert store.blockers_among(conn, b, []) == set()


def test_the_list_pages_without_gaps_or_repeats(conn):
    me, *peers = new_users(conn, 8)
    made = [store.create_direct(conn, me, p)[0] for p in peers]
    post(conn, made[3], peers[3], 1)
    whole = store.list_conversations(conn, me, limit=100)
    assert [str(r["id"]) for r in whole][0] == made[3]
    assert sorted(str(r["id"]) for r in whole) == sorted(made)
    paged, before = [], None
    while True:
        page = store.list_conversations(conn, me, limit=3, before=before)
        paged += [str(r["id"]) for r in page]
        if len(page) < 3:
            break
        before = (page[-1]["activity_at"], str(page[-1]["id"]))
    assert paged == [str(r["id"]) for r in whole]


# ---- the routes on the real database, MongoDB unreachable ---------------------------------


def test_with_mongodb_down_history_is_503_and_delete_leaves_every_body_as_it_was(dsn, conn):
    """A MongoDB failure answers 503 `unavailable` (not 500), and delete for everyone rolls
    back: the message keeps its body in PostgreSQL, so a retry deletes it in both stores."""
    sender, other = new_users(conn, 2)
    cid, _ = store.create_direct(conn, sender, other)
    post(conn, cid, sender, 1)
    (message_id,) = [r["id"] for r in store.messages_in_range(conn, cid, 0, 10)]
    app = create_app(ChatSettings.from_env(chat_env(WHATSAPP_POSTGRES_DSN=dsn)), background=False)
    app.config["TESTING"] = True
    client = app.test_client()
    headers = {"Authorization": f"Bearer {token(sender)}"}

    history = client.get(f"/api/v1/conversations/{cid}/messages", headers=headers)
    assert history.status_code == 503, history.get_data(as_text=True)
    assert history.get_json()["error"]["code"] == "unavailable"
    deleted = client.delete(f"/api/v1/messages/{message_id}", headers=headers)
    assert deleted.status_code == 503, deleted.get_data(as_text=True)
    assert deleted.get_json()["error"]["code"] == "unavailable"
    row = conn.execute(
        "SELECT body, deleted_at FROM conversations.messages WHERE id = %s", (message_id,)
    ).fetchone()
    assert row == {"body": f"m{1}", "deleted_at": None}


def test_an_encrypted_message_keeps_its_long_opaque_body_and_a_plain_one_is_held_to_4096(conn):
    alice, bob = new_users(conn, 2)
    conversation, _ = store.create_direct(conn, alice, bob)
    opaque = "A" * 65_536
    row = record(conn, conversation, alice, client_msg_id="enc-1", body=opaque, encrypted=True)
    assert row["encrypted"] is True and row["body"] == opaque
    with pytest.raises(psycopg.errors.CheckViolation):
        record(conn, conversation, alice, client_msg_id="plain-1", body="B" * 4097)
