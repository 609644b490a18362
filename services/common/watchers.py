"""Who is sent a user's `presence` frames: one query, used by chat (a socket came or went)
and scheduled_jobs (a dead chat instance's sockets pruned).

Watchers are the users who keep the user as a contact, minus those the user blocked,
narrowed by the user's `last_seen_visibility` (accounts migration 0003):
- `everyone`: all of them;
- `contacts` (the default): only those the user keeps in their own contact list too;
- `nobody`: none.
The user service applies the same rule to GET /users/{id}/presence (services/user/presence.py).
"""

from __future__ import annotations

import psycopg

WATCHERS_OF_SQL = """
SELECT c.owner_id FROM accounts.contacts c
JOIN accounts.users u ON u.id = c.contact_id
WHERE c.contact_id = %(user)s
  AND (u.last_seen_visibility = 'everyone'
       OR (u.last_seen_visibility = 'contacts'
           AND EXISTS (SELECT 1 FROM accounts.contacts mine
                       WHERE mine.owner_id = %(user)s AND mine.contact_id = c.owner_id)))
  AND NOT EXISTS (SELECT 1 FROM accounts.blocks b
                  WHERE b.blocker_id = %(user)s AND b.blocked_id = c.owner_id)
"""


def query_watchers(conn: psycopg.Connection, user_id: str) -> list[str]:
    """The ids of the users allowed to receive `user_id`'s presence frames (dict-row or
    tuple-row connections alike)."""
    rows = conn.execute(WATCHERS_OF_SQL, {"user": user_id}).fetchall()
    return [str(r["owner_id"] if isinstance(r, dict) else r[0]) for r in rows]
