"""The contract's replies, reactions and edits through nginx: a reply carries `reply_to`
(refused for a message of another conversation or one the sender does not see), one
reaction per member per message with live `reaction` frames and `reactions` in history,
and edits by the sender only, within 15 minutes, with `message.edited` and the last body in
history and catch-up."""

from __future__ import annotations

import uuid

import pytest
from stack_client import User

pytestmark = pytest.mark.docker


@pytest.fixture(scope="module", autouse=True)
def stack(deployed_stack):
    assert deployed_stack[0].returncode == 0, "the deploy failed: see the deploy test"


def error_code(answer) -> tuple[int, str | None]:
    return answer.status_code, (answer.json().get("error") or {}).get("code") if answer.content else None


def test_a_reply_carries_reply_to_live_in_history_and_is_refused_across_conversations():
    alice, bob, carol = User("Alice replying"), User("Bob replied to"), User("Carol elsewhere")
    conversation = alice.direct_with(bob)
    elsewhere = bob.direct_with(carol)
    original = bob.post_message(conversation, "lunch?")
    foreign = carol.post_message(elsewhere, "not yours")
    with bob.socket() as bob_socket, alice.socket() as alice_socket:
        ack = alice_socket.send_message(conversation, "yes!", reply_to=original["id"])
        assert ack["type"] == "message.ack", ack
        assert ack["message"]["reply_to"] == original["id"]
        live = bob_socket.wait_for(
            lambda f: f.get("type") == "message.new" and f["message"]["id"] == ack["message"]["id"]
        )
        assert live["message"]["reply_to"] == original["id"]
        refused = alice_socket.send_message(conversation, "sneaky", reply_to=foreign["id"])
        assert (refused["type"], refused["code"]) == ("error", "validation_error"), refused
    rest = alice.api.call(
        "POST",
        f"/conversations/{conversation}/messages",
        {"client_msg_id": str(uuid.uuid4()), "body": "again", "reply_to": original["id"]},
    )
    assert rest.status_code == 201 and rest.json()["reply_to"] == original["id"], rest.text
    assert error_code(
        alice.api.call(
            "POST",
            f"/conversations/{conversation}/messages",
            {"client_msg_id": str(uuid.uuid4()), "body": "x", "reply_to": "no-such-message"},
        )
    ) == (400, "validation_error")
    history = {m["id"]: m for m in bob.history(conversation)}
    assert history[ack["message"]["id"]]["reply_to"] == original["id"]
    assert "reply_to" not in history[original["id"]]
    assert [m["body"] for m in history.values()] == ["lunch?", "yes!", "again"]  # the refused ones are absent


def test_reactions_one_per_member_live_and_in_history_and_a_later_member_cannot_react_to_the_past():
    admin, member, late = User("Admin reacting"), User("Member reacting"), User("Late joiner")
    group = admin.group("reactions", [member])["id"]
    message = admin.post_message(group, "vote with emoji")
    path = f"/messages/{message['id']}/reaction"
    with admin.socket() as admin_socket:
        assert member.api.call("PUT", path, {"emoji": "👍"}).status_code == 204
        frame = admin_socket.wait_for(lambda f: f.get("type") == "reaction" and f["emoji"] == "👍")
        assert frame == {
            "type": "reaction",
            "conversation_id": group,
            "message_id": message["id"],
            "user_id": member.id,
            "emoji": "👍",
        }
        assert member.api.call("PUT", path, {"emoji": "🎉"}).status_code == 204  # replaces 👍
        admin_socket.wait_for(lambda f: f.get("type") == "reaction" and f["emoji"] == "🎉")
        assert admin.api.call("PUT", path, {"emoji": "❤️"}).status_code == 204
        (listed,) = [m for m in admin.history(group) if m["id"] == message["id"]]
        assert sorted((r["user_id"], r["emoji"]) for r in listed["reactions"]) == sorted(
            [(member.id, "🎉"), (admin.id, "❤️")]
        )
        assert admin.api.call("DELETE", path).status_code == 204
        removed = admin_socket.wait_for(lambda f: f.get("type") == "reaction" and f["emoji"] is None)
        assert removed["user_id"] == admin.id
    (listed,) = [m for m in member.history(group) if m["id"] == message["id"]]
    assert listed["reactions"] == [{"user_id": member.id, "emoji": "🎉"}]
    assert error_code(member.api.call("PUT", path, {"emoji": "x" * 17})) == (400, "validation_error")
    assert error_code(member.api.call("PUT", path, {})) == (400, "validation_error")
    # Added after the message: it is not in the late member's view, so neither is reacting to it.
    assert admin.api.call("POST", f"/conversations/{group}/members", {"user_id": late.id}).status_code == 201
    assert error_code(late.api.call("PUT", path, {"emoji": "👀"})) == (404, "not_found")
    # Deleted for everyone: its reactions go with it.
    assert admin.api.call("DELETE", f"/messages/{message['id']}").status_code == 204
    assert error_code(member.api.call("PUT", path, {"emoji": "👍"})) == (404, "not_found")


def test_an_edit_is_the_senders_within_the_window_live_and_in_history_and_catch_up():
    alice, bob = User("Alice editing"), User("Bob reading edits")
    conversation = alice.direct_with(bob)
    message = alice.post_message(conversation, "teh typo")
    with bob.socket() as bob_socket:
        answer = alice.api.call("PATCH", f"/messages/{message['id']}", {"body": "the typo, fixed"})
        assert answer.status_code == 200, answer.text
        edited = answer.json()
        assert edited["body"] == "the typo, fixed" and edited["seq"] == message["seq"]
        assert edited["edited_at"] >= message["created_at"]
        frame = bob_socket.wait_for(lambda f: f.get("type") == "message.edited")
        assert frame["message"]["id"] == message["id"]
        assert frame["message"]["body"] == "the typo, fixed"
        assert frame["message"]["edited_at"] == edited["edited_at"]
    assert error_code(bob.api.call("PATCH", f"/messages/{message['id']}", {"body": "mine now"})) == (
        403,
        "forbidden",
    )
    assert error_code(alice.api.call("PATCH", f"/messages/{message['id']}", {"body": " "}))[0] == 400
    assert error_code(alice.api.call("PATCH", "/messages/no-such-message", {"body": "x"})) == (
        404,
        "not_found",
    )
    (listed,) = [m for m in bob.history(conversation) if m["id"] == message["id"]]
    assert (listed["body"], listed["edited_at"]) == ("the typo, fixed", edited["edited_at"])
    # A socket that connects later catches up with the last body.
    with bob.second_session().socket() as fresh:
        caught = fresh.wait_for(
            lambda f: f.get("type") == "message.new" and f["message"]["id"] == message["id"]
        )
        assert caught["message"]["body"] == "the typo, fixed"
    # Deleted: no more edits (409), and the message is gone from history.
    assert alice.api.call("DELETE", f"/messages/{message['id']}").status_code == 204
    assert error_code(alice.api.call("PATCH", f"/messages/{message['id']}", {"body": "back"})) == (
        409,
        "conflict",
    )
    assert all(m["id"] != message["id"] for m in bob.history(conversation))
