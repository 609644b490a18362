"""Per-session delivery marks on a real PostgreSQL (real_backends.py): a message one device
(session) confirmed is still caught up on the user's other device, a session made later
starts where the user's mark is then, a user who joins a group starts every session at the
start of its view, and marks go with the membership and with the session.
"""

from __future__ import annotations

import uuid
from datetime import timedelta

from test_chat_store_sql import new_users, post

from services.chat import store
from services.common.times import utcnow
from services.scheduled_jobs.tokens import delete_sessions_without_tokens


def new_session(conn, user_id: str) -> str:
    session_id = str(uuid.uuid4())
    conn.execute("INSERT INTO accounts.sessions (id, user_id) VALUES (%s, %s)", (session_id, user_id))
    return session_id


def start_of(conn, user_id: str, session_id: str | None) -> dict[str, int]:
    return {
        str(r["conversation_id"]): int(r["delivered_seq"])
        for r in store.memberships(conn, user_id, session_id)
    }


def test_what_one_session_confirmed_is_still_caught_up_on_the_other(conn):
    me, peer = new_users(conn, 2)
    phone, laptop = new_session(conn, me), new_session(conn, me)
    conversation, _ = store.create_direct(conn, me, peer)  # seeds both sessions at 0
    post(conn, conversation, peer, 3)
    assert store.mark_receipt(conn, conversation, me, 3, "delivered", session_id=phone) == 3
    assert start_of(conn, me, phone) == {conversation: 3}
    assert start_of(conn, me, laptop) == {conversation: 0}  # the laptop still gets 1..3
    assert start_of(conn, me, None) == {conversation: 3}  # no session: the member's mark
    # A read on the laptop moves its own mark (and never backwards, nor past last_seq).
    assert store.mark_receipt(conn, conversation, me, 99, "read", session_id=laptop) == 3
    assert store.mark_receipt(conn, conversation, me, 1, "delivered", session_id=laptop) == 3
    assert start_of(conn, me, laptop) == {conversation: 3}
    # A session made later starts at the member's mark then, and keeps that start.
    post(conn, conversation, peer, 2)
    tablet = new_session(conn, me)
    assert start_of(conn, me, tablet) == {conversation: 3}
    assert store.mark_receipt(conn, conversation, me, 5, "delivered", session_id=phone) == 5
    assert start_of(conn, me, tablet) == {conversation: 3}
    # A stranger's receipt changes nothing and makes no mark.
    stranger = new_users(conn, 1)[0]
    assert (
        store.mark_receipt(
            conn, conversation, stranger, 5, "delivered", session_id=new_session(conn, stranger)
        )
        is None
    )
    assert conn.execute(
        "SELECT count(*) AS n FROM conversations.session_marks WHERE user_id = %s", (stranger,)
    ).fetchone() == {"n": 0}


def test_joining_starts_every_session_at_the_view_and_leaving_removes_the_marks(conn):
    admin, late = new_users(conn, 2)
    offline = new_session(conn, late)
    group = store.create_group(conn, admin, "g", [])
    post(conn, group, admin, 4)
    store.add_member(conn, group, late)  # sees seqs above 4 only
    post(conn, group, admin, 2)
    store.mark_receipt(conn, group, late, 6, "delivered", session_id=new_session(conn, late))
    assert start_of(conn, late, offline) == {group: 4}  # seeded at join: it gets 5 and 6
    store.remove_member(conn, group, late)
    assert conn.execute(
        "SELECT count(*) AS n FROM conversations.session_marks WHERE conversation_id = %s AND user_id = %s",
        (group, late),
    ).fetchone() == {"n": 0}


def test_a_pruned_session_takes_its_marks_along(conn):
    me, peer = new_users(conn, 2)
    gone = new_session(conn, me)
    conversation, _ = store.create_direct(conn, me, peer)
    assert start_of(conn, me, gone) == {conversation: 0}
    # No refresh token left: scheduled_jobs removes the session, and its marks with it.
    assert delete_sessions_without_tokens(conn, utcnow() + timedelta(seconds=1), 1000) >= 1
    assert conn.execute(
        "SELECT count(*) AS n FROM conversations.session_marks WHERE session_id = %s", (gone,)
    ).fetchone() == {"n": 0}
