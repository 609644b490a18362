"""Who has a socket open, as chat records it in Redis, and whom that leaves to push.

- `presence:<user>` exists while any socket of the user is open anywhere (a TTL the chat
  instance holding the socket refreshes).
- `sockets:<user>` is a sorted set of socket keys scored by the moment each stops
  counting; a key is `<chat instance>:<socket>:<session>` (the session empty for tokens
  without one), so the sessions with an open socket are read from the live members.

A push target (accounts.devices) belongs to the session that registered it and is pushed
while that session has no open socket; a target without a session (registered before
sessions owned them) is pushed while the user has no socket at all.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

PRESENCE_KEY = "presence:{user_id}"
SOCKETS_KEY = "sockets:{user_id}"
SOCKETS_PREFIX = "sockets:"


def socket_member(instance_id: str, socket_id: str, session_id: str | None) -> str:
    return f"{instance_id}:{socket_id}:{session_id or ''}"


@dataclass(frozen=True)
class Online:
    """A user's open sockets, from the live members of `sockets:<user>`."""

    sockets: int
    sessions: frozenset[str]

    @classmethod
    def from_members(cls, members: Iterable[bytes | str]) -> Online:
        sessions, count = set(), 0
        for member in members:
            text = member.decode() if isinstance(member, bytes) else member
            count += 1
            parts = text.split(":")
            # `<instance>:<socket>` (a chat older than session keys) names no session.
            if len(parts) >= 3 and parts[-1]:
                sessions.add(parts[-1])
        return cls(sockets=count, sessions=frozenset(sessions))


@dataclass(frozen=True)
class PushTarget:
    device_id: str
    session_id: str | None


def to_push(targets: Iterable[PushTarget], online: Online) -> list[str]:
    """The ids of the targets whose session has no open socket (sessionless ones: while
    the user has none)."""
    return [
        t.device_id
        for t in targets
        if (t.session_id not in online.sessions if t.session_id is not None else online.sockets == 0)
    ]
