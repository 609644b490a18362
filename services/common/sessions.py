"""Ended sessions, told to every chat instance so their sockets end too.

A session is one refresh-token family; its access tokens carry its id (claim `sid`).
When a session ends (logout, the re-use of a spent refresh token), the user service marks
it in Redis for as long as one of its access tokens can still be valid, and publishes its
id on SESSIONS_CHANNEL: each chat instance closes the sockets opened with it (4401),
refuses new upgrades with its tokens, and looks again at every socket after its own
subscription was broken (a publish it missed).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable

import redis

log = logging.getLogger(__name__)

SESSIONS_CHANNEL = "whatsapp:sessions:ended"
ENDED_KEY = "session-ended:{sid}"
# Beyond an access token's life: the clock leeway of verification, and some margin.
ENDED_KEY_MARGIN_SECONDS = 60


def end_sessions(client: redis.Redis, session_ids: Iterable[str], *, access_ttl_seconds: int) -> bool:
    """Mark the sessions ended and tell the chat instances; False when Redis could not be
    told (the sessions' sockets then last until their tokens expire)."""
    ids = sorted({str(s) for s in session_ids})
    if not ids:
        return True
    try:
        pipe = client.pipeline(transaction=False)
        for sid in ids:
            pipe.set(ENDED_KEY.format(sid=sid), "1", ex=access_ttl_seconds + ENDED_KEY_MARGIN_SECONDS)
        pipe.publish(SESSIONS_CHANNEL, json.dumps({"ended": ids}))
        pipe.execute()
    except redis.RedisError as exc:
        log.warning("ended sessions not announced (%s): their sockets last until their tokens expire", exc)
        return False
    return True


def ended_among(client: redis.Redis, session_ids: Iterable[str | None]) -> set[str]:
    """Which of these sessions have ended (None, a token without a session, never has)."""
    ids = sorted({s for s in session_ids if s})
    if not ids:
        return set()
    flags = client.mget([ENDED_KEY.format(sid=sid) for sid in ids])
    return {sid for sid, flag in zip(ids, flags, strict=True) if flag is not None}


def parse_announcement(data: str | bytes) -> list[str]:
    """The session ids of one SESSIONS_CHANNEL message ([] for anything malformed)."""
    try:
        ended = json.loads(data).get("ended")
    except (ValueError, TypeError, AttributeError):
        return []
    return [str(s) for s in ended if isinstance(s, str)] if isinstance(ended, list) else []
