"""Whom a message is pushed to: the sessions with an open socket, read from chat's socket
keys, against the push targets each session owns (services/common/presence.py)."""

from __future__ import annotations

from services.common.presence import Online, PushTarget, socket_member, to_push


def test_socket_keys_name_their_session_and_old_keys_name_none():
    online = Online.from_members(
        [socket_member("chat-1", "a1", "s-laptop").encode(), socket_member("chat-2", "b2", None), "chat-1:c3"]
    )
    assert online == Online(sockets=3, sessions=frozenset({"s-laptop"}))
    assert Online.from_members([]) == Online(sockets=0, sessions=frozenset())


def test_a_target_is_pushed_while_its_session_has_no_socket():
    targets = [PushTarget("phone", "s-phone"), PushTarget("laptop", "s-laptop"), PushTarget("old", None)]
    # Nobody online: every target.
    assert to_push(targets, Online(0, frozenset())) == ["phone", "laptop", "old"]
    # The laptop open: the phone still is pushed; a target without a session is not (the
    # user has a socket).
    assert to_push(targets, Online(1, frozenset({"s-laptop"}))) == ["phone"]
    # A socket whose token names no session keeps only sessionless targets quiet.
    assert to_push(targets, Online(1, frozenset())) == ["phone", "laptop"]
    assert to_push(targets, Online(2, frozenset({"s-laptop", "s-phone"}))) == []
