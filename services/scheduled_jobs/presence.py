"""Job prune_presence: sockets of dead chat instances stop keeping users online.

chat keeps, per user, `sockets:<user>`: a sorted set of socket keys scored by the moment
each stops counting (pushed forward by the heartbeat of the instance holding the socket),
and `presence:<user>` while any socket is open. A chat instance that dies cannot remove
its sockets: their scores fall behind the clock.

1. Scan: for each `sockets:*` key (SCAN, bounded per run, resumed where the last run
   stopped) one Lua script, atomic against chat's own updates, removes the members scored
   below now. When that empties the set it also deletes `presence:<user>` and notes the
   user in a pending set, scored by the moment its last socket went stale.
2. Settle: each pending user gets `last_seen` through `accounts.record_last_seen` and its
   watchers a `presence` frame (offline), as chat does when a last socket closes; only
   then is it taken off the pending set. PostgreSQL or Redis down: the user stays
   pending and the next run settles it.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import psycopg

from services.common.presence import PRESENCE_KEY, SOCKETS_PREFIX
from services.common.times import rfc3339
from services.common.watchers import query_watchers
from services.scheduled_jobs.context import JobsContext
from services.scheduled_jobs.events import publish_events

log = logging.getLogger(__name__)

# Users whose last socket went stale, scored by when; settled into PostgreSQL by step 2.
PENDING_OFFLINE_KEY = "scheduled_jobs:offline_pending"
CURSOR_STATE = "presence_scan_cursor"
SCRIPT_STATE = "presence_script"

# KEYS: sockets:<user>, presence:<user>, the pending set; ARGV: now (Unix seconds), user id.
# Returns {stale members removed, 1 if the set is gone now, presence keys deleted}.
# Redis deletes a sorted set when its last member goes.
PRUNE_SCRIPT = """
local stale = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. ARGV[1], 'WITHSCORES')
if #stale == 0 then
    return {0, 0, 0}
end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. ARGV[1])
if redis.call('EXISTS', KEYS[1]) == 1 then
    return {#stale / 2, 0, 0}
end
local deleted = redis.call('DEL', KEYS[2])
redis.call('ZADD', KEYS[3], stale[#stale], ARGV[2])
return {#stale / 2, 1, deleted}
"""


@dataclass(frozen=True)
class Pruned:
    removed: int
    emptied: bool
    presence_deleted: bool

    @classmethod
    def from_reply(cls, reply: list[Any]) -> Pruned:
        removed, emptied, deleted = (int(x) for x in reply)
        return cls(removed=removed, emptied=bool(emptied), presence_deleted=bool(deleted))


def user_of(key: str) -> str | None:
    """The user id in `sockets:<user id>`, or None when the rest is not a UUID."""
    if not key.startswith(SOCKETS_PREFIX):
        return None
    try:
        return str(uuid.UUID(key[len(SOCKETS_PREFIX) :]))
    except ValueError:
        return None


def last_seen_at(stale_score: float, now: float) -> datetime:
    """When the user was last seen: when its last socket went stale, never in the future."""
    return datetime.fromtimestamp(min(stale_score, now), UTC)


def watchers_of(conn: psycopg.Connection, user_id: str) -> list[str]:
    """Users who have `user_id` as a contact, minus any it blocked, narrowed by its
    last_seen_visibility: the rule is services/common/watchers.py's, shared with chat."""
    return query_watchers(conn, user_id)


def _script(ctx: JobsContext) -> Any:
    script = ctx.state.get(SCRIPT_STATE)
    if script is None:
        script = ctx.state[SCRIPT_STATE] = ctx.redis.register_script(PRUNE_SCRIPT)
    return script


def prune_key(ctx: JobsContext, key: str, now: float, counts: Counter[str]) -> None:
    user_id = user_of(key)
    if user_id is None:
        counts["skipped_keys"] += 1
        return
    reply = _script(ctx)(
        keys=[key, PRESENCE_KEY.format(user_id=user_id), PENDING_OFFLINE_KEY], args=[repr(now), user_id]
    )
    pruned = Pruned.from_reply(reply)
    if pruned.removed:
        counts["sockets_removed"] += pruned.removed
    if pruned.presence_deleted:
        counts["presence_cleared"] += 1
    if pruned.emptied:
        counts["went_offline"] += 1


def scan_sockets(ctx: JobsContext, now: float, budget: int, counts: Counter[str]) -> None:
    cursor = int(ctx.state.get(CURSOR_STATE, 0))
    while budget > 0:
        if not ctx.leading():
            counts["stopped_not_leader"] += 1
            return
        cursor, keys = ctx.redis.scan(cursor, match=SOCKETS_PREFIX + "*", count=ctx.settings.job_batch_size)
        for key in keys:
            prune_key(ctx, key if isinstance(key, str) else key.decode(), now, counts)
        if keys:
            counts["keys_scanned"] += len(keys)
        budget -= max(len(keys), 1)
        # Where the next run goes on (0: this pass over the keys is complete).
        ctx.state[CURSOR_STATE] = cursor
        if cursor == 0:
            return


def settle_offline(ctx: JobsContext, now: float, budget: int, counts: Counter[str]) -> None:
    pending = ctx.redis.zrange(PENDING_OFFLINE_KEY, 0, budget - 1, withscores=True)
    for member, score in pending:
        user_id = member if isinstance(member, str) else member.decode()
        seen = last_seen_at(float(score), now)
        with ctx.db.connection() as conn:
            conn.execute("SELECT accounts.record_last_seen(%s, %s)", (user_id, seen))
            watchers = watchers_of(conn, user_id)
        # Back online since (a new socket): its watchers were told so by chat; say nothing.
        if watchers and not ctx.redis.exists(PRESENCE_KEY.format(user_id=user_id)):
            frame = {"type": "presence", "user_id": user_id, "online": False, "last_seen": rfc3339(seen)}
            counts["events"] += publish_events(
                ctx.redis, ctx.settings.events_channel, [{"to": watchers, "frame": frame}]
            )
        ctx.redis.zrem(PENDING_OFFLINE_KEY, member)
        counts["last_seen_recorded"] += 1


def prune_presence(ctx: JobsContext, counts: Counter[str]) -> None:
    now = time.time()
    budget = ctx.settings.max_items_per_run
    scan_sockets(ctx, now, budget, counts)
    if ctx.leading():
        settle_offline(ctx, now, budget, counts)
