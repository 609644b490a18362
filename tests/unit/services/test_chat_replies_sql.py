"""Replies, reactions and edits in the chat service's SQL and routes, on a real PostgreSQL
(a throw-away database migrated with the project's runner, real_backends.py): a reply names
a message its sender may see in the same conversation, one reaction per member per message
(replaced, removed, gone with the body), and an edit is the sender's, within 15 minutes,
never of a deleted message, and rolled back when MongoDB cannot take it.
"""

from __future__ import annotations

import uuid

import psycopg
import pytest
from test_chat_store_sql import new_users, post
from test_chat_units import chat_env, token

from services.chat import create_app, store
from services.chat.settings import ChatSettings


@pytest.fixture
def client(dsn):
    """The chat app on the real database; MongoDB, Redis and RabbitMQ unreachable."""
    app = create_app(ChatSettings.from_env(chat_env(WHATSAPP_POSTGRES_DSN=dsn)), background=False)
    app.config["TESTING"] = True
    return app.test_client()


def ids_of(conn, conversation_id: str) -> list[str]:
    return [r["id"] for r in store.messages_in_range(conn, conversation_id, 0, 10**9)]


def test_a_reply_names_a_message_of_the_same_conversation_that_its_sender_sees(conn):
    admin, early, late = new_users(conn, 3)
    group = store.create_group(conn, admin, "g", [early])
    elsewhere, _ = store.create_direct(conn, admin, early)
    post(conn, group, admin, 2)
    post(conn, elsewhere, early, 1)
    first, second = ids_of(conn, group)
    (other,) = ids_of(conn, elsewhere)
    store.add_member(conn, group, late)
    post(conn, group, admin, 1)
    third = ids_of(conn, group)[2]
    store.delete_message(conn, second, admin)
    asked = [
        (group, early, first),  # allowed
        (group, early, second),  # deleted: nothing to see
        (group, early, other),  # another conversation's message
        (group, late, first),  # before the late member's view begins
        (group, late, third),  # allowed
        (elsewhere, late, other),  # not a member
        (group, early, "no-such-id"),
    ]
    assert store.replies_allowed(conn, asked) == {(group, early, first), (group, late, third)}
    assert store.replies_allowed(conn, []) == set()


def test_one_reaction_per_member_replaced_removed_and_gone_with_the_body(conn):
    alice, bob = new_users(conn, 2)
    conversation, _ = store.create_direct(conn, alice, bob)
    post(conn, conversation, alice, 2)
    kept, deleted = ids_of(conn, conversation)
    assert store.set_reaction(conn, kept, bob, "👍") is True
    assert store.set_reaction(conn, kept, bob, "👍") is False  # the same again changes nothing
    assert store.set_reaction(conn, kept, bob, "❤️") is True  # replaces the old one
    assert store.set_reaction(conn, kept, alice, "😂") is True
    assert store.set_reaction(conn, deleted, bob, "👎") is True
    reactions = store.reactions_of(conn, [kept, deleted])
    # Oldest first: bob's replacement came before alice's reaction.
    assert reactions[kept] == [{"user_id": bob, "emoji": "❤️"}, {"user_id": alice, "emoji": "😂"}]
    assert reactions[deleted] == [{"user_id": bob, "emoji": "👎"}]
    assert store.set_reaction(conn, kept, alice, None) is True
    assert store.set_reaction(conn, kept, alice, None) is False  # nothing left to remove
    assert store.reactions_of(conn, [kept])[kept] == [{"user_id": bob, "emoji": "❤️"}]
    store.delete_message(conn, deleted, alice)
    assert deleted not in store.reactions_of(conn, [kept, deleted])
    with pytest.raises(psycopg.errors.CheckViolation):
        store.set_reaction(conn, kept, bob, "x" * 17)


def test_the_routes_answer_the_contract_before_touching_mongodb(conn, client):
    alice, bob, stranger = new_users(conn, 3)
    conversation, _ = store.create_direct(conn, alice, bob)
    post(conn, conversation, alice, 3)
    recent, old, gone = ids_of(conn, conversation)
    conn.execute(
        "UPDATE conversations.messages SET created_at = now() - interval '16 minutes' WHERE id = %s", (old,)
    )
    store.delete_message(conn, gone, alice)
    as_alice = {"Authorization": f"Bearer {token(alice)}"}
    as_bob = {"Authorization": f"Bearer {token(bob)}"}
    as_stranger = {"Authorization": f"Bearer {token(stranger)}"}

    def code(answer) -> tuple[int, str | None]:
        body = answer.get_json(silent=True) or {}
        return answer.status_code, body.get("error", {}).get("code")

    assert code(client.patch(f"/api/v1/messages/{recent}", json={"body": "x"}, headers=as_bob)) == (
        403,
        "forbidden",
    )
    assert code(client.patch(f"/api/v1/messages/{recent}", json={"body": "x"}, headers=as_stranger)) == (
        404,
        "not_found",
    )
    assert code(client.patch(f"/api/v1/messages/{old}", json={"body": "x"}, headers=as_alice)) == (
        409,
        "conflict",
    )
    assert code(client.patch(f"/api/v1/messages/{gone}", json={"body": "x"}, headers=as_alice)) == (
        409,
        "conflict",
    )
    assert code(client.patch(f"/api/v1/messages/{recent}", json={"body": "   "}, headers=as_alice))[0] == 400
    assert (
        code(client.patch(f"/api/v1/messages/{recent}", json={"body": "y" * 4097}, headers=as_alice))[0]
        == 400
    )
    assert code(client.patch(f"/api/v1/messages/{recent}", json={}, headers=as_alice))[0] == 400
    # MongoDB cannot take the edit: 503, and the row keeps its body and no edited_at.
    assert code(client.patch(f"/api/v1/messages/{recent}", json={"body": "new"}, headers=as_alice)) == (
        503,
        "unavailable",
    )
    row = conn.execute(
        "SELECT body, edited_at FROM conversations.messages WHERE id = %s", (recent,)
    ).fetchone()
    assert row == {"body": "m1", "edited_at": None}

    # Reactions need no MongoDB: one per member, frames are best effort (Redis is down).
    assert (
        client.put(f"/api/v1/messages/{recent}/reaction", json={"emoji": "👍"}, headers=as_bob).status_code
        == 204
    )
    assert (
        code(client.put(f"/api/v1/messages/{recent}/reaction", json={"emoji": ""}, headers=as_bob))[0] == 400
    )
    assert (
        code(client.put(f"/api/v1/messages/{recent}/reaction", json={"emoji": "z" * 17}, headers=as_bob))[0]
        == 400
    )
    assert (
        code(client.put(f"/api/v1/messages/{gone}/reaction", json={"emoji": "👍"}, headers=as_bob))[0] == 404
    )
    assert (
        code(client.put(f"/api/v1/messages/{recent}/reaction", json={"emoji": "👍"}, headers=as_stranger))[0]
        == 404
    )
    assert store.reactions_of(conn, [recent])[recent] == [{"user_id": bob, "emoji": "👍"}]
    conn.execute("INSERT INTO accounts.blocks (blocker_id, blocked_id) VALUES (%s, %s)", (bob, alice))
    assert code(
        client.put(f"/api/v1/messages/{recent}/reaction", json={"emoji": "🙂"}, headers=as_alice)
    ) == (
        403,
        "blocked",
    )
    assert client.delete(f"/api/v1/messages/{recent}/reaction", headers=as_bob).status_code == 204
    assert store.reactions_of(conn, [recent]) == {}

    # A reply to a message of another conversation is refused before anything is recorded.
    other, _ = store.create_direct(conn, bob, stranger)
    post(conn, other, stranger, 1)
    (foreign,) = ids_of(conn, other)
    sent = client.post(
        f"/api/v1/conversations/{conversation}/messages",
        json={"client_msg_id": uuid.uuid4().hex, "body": "re", "reply_to": foreign},
        headers=as_bob,
    )
    assert code(sent) == (400, "validation_error"), sent.get_data(as_text=True)
    assert "reply_to" in sent.get_json()["error"]["message"]
    assert len(ids_of(conn, conversation)) == 3
