"""Job expire_messages: disappearing messages past their `expires_at` are erased.

Per batch, in one PostgreSQL transaction that holds the rows (FOR UPDATE SKIP LOCKED):
1. pick up to `job_batch_size` rows with `expires_at <= now()` and a body;
2. delete their MongoDB documents (history is read from there);
3. erase the body in PostgreSQL (the row stays: its seq remains taken, and message_processor
   sees `body IS NULL` and erases a copy it stores late);
4. publish one `message.deleted` event per message to the conversation's members;
5. remove the rows of their files that no live message carries (the bytes after the commit).
The commit comes last, so a failure at any step leaves the rows as they were and the next
run does it all again; each step is idempotent (a second delete or event does no harm).
While the rows are locked, message_processor's `mark_stored` of the same messages waits,
then sees them erased. Chat already hides expired messages from history and catch-up,
so the sweep's delay is not visible to clients.

A final step removes MongoDB documents that expired but whose row was erased before they
were stored (message_processor keeps such a copy without its body).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import psycopg

from services.common import media
from services.common.members import MemberMarks, members_by_conversation, seeing
from services.common.mongo import MESSAGES
from services.common.times import utcnow
from services.scheduled_jobs.context import JobsContext
from services.scheduled_jobs.events import publish_events

log = logging.getLogger(__name__)

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

Row = dict[str, Any]


def lock_expired(conn: psycopg.Connection, limit: int) -> list[Row]:
    """Up to `limit` expired messages that still have a body, locked for this transaction."""
    return conn.execute(
        """
        SELECT id, conversation_id, seq, media_id FROM conversations.messages
        WHERE expires_at <= now() AND body IS NOT NULL
        ORDER BY expires_at
        LIMIT %s
        FOR UPDATE SKIP LOCKED
        """,
        (limit,),
    ).fetchall()


def erase_bodies(conn: psycopg.Connection, message_ids: list[str]) -> int:
    """Erase the messages' bodies and their reactions; how many bodies were erased."""
    erased = conn.execute(
        "UPDATE conversations.messages SET body = NULL WHERE id = ANY(%s) AND body IS NOT NULL",
        (message_ids,),
    ).rowcount
    conn.execute("DELETE FROM conversations.reactions WHERE message_id = ANY(%s)", (message_ids,))
    return erased


def deletion_events(rows: Iterable[Row], members: MemberMarks) -> list[dict[str, Any]]:
    """One event per message for the chat instances: `{"to": [members], "frame": message.deleted}`,
    to the members who could see it. A conversation with no members left needs no event."""
    events = []
    for row in rows:
        conversation_id = str(row["conversation_id"])
        to = seeing(members.get(conversation_id, {}), int(row["seq"]))
        if not to:
            continue
        frame = {"type": "message.deleted", "conversation_id": conversation_id, "message_id": str(row["id"])}
        events.append({"to": to, "frame": frame})
    return events


def expire_batch(ctx: JobsContext, counts: Counter[str]) -> int:
    """One batch; returns how many rows it picked up (fewer than the batch size: done)."""
    settings = ctx.settings
    with ctx.db.transaction() as conn:
        rows = lock_expired(conn, settings.job_batch_size)
        if not rows:
            return 0
        ids = [str(r["id"]) for r in rows]
        result = ctx.mongo[MESSAGES].delete_many({"_id": {"$in": ids}})
        erased = erase_bodies(conn, ids)
        # Their files go with them (unless a live message carries one too): rows now, bytes
        # after the commit.
        forgotten = media.forget(conn, [r["media_id"] for r in rows if r["media_id"]])
        members = members_by_conversation(conn, sorted({str(r["conversation_id"]) for r in rows}))
        # Published before the commit: if Redis is down the batch is rolled back and retried,
        # so members hear of every expiry at least once.
        published = publish_events(ctx.redis, settings.events_channel, deletion_events(rows, members))
    media.delete_files(ctx.mongo, forgotten)
    done = {
        "expired": erased,
        "mongo_deleted": result.deleted_count,
        "events": published,
        "media_erased": len(forgotten),
    }
    counts.update({item: n for item, n in done.items() if n})
    return len(rows)


def sweep_stored_copies(ctx: JobsContext, now: datetime, counts: Counter[str]) -> None:
    """Delete expired documents whose row was already erased (stored after the expiry)."""
    collection = ctx.mongo[MESSAGES]
    # A closed range: with an open one (`$lte` alone) the MongoDB stand-in scans every
    # document (1.2 s at 40,000 messages, every 10 s, growing with the store) instead of
    # the expires_at index (5 ms). Every expiry is after the epoch, so nothing is missed.
    expired = collection.find({"expires_at": {"$gte": EPOCH, "$lte": now}}, {"_id": 1}).limit(
        ctx.settings.job_batch_size
    )
    ids = [doc["_id"] for doc in expired]
    if ids:
        result = collection.delete_many({"_id": {"$in": ids}, "expires_at": {"$lte": now}})
        if result.deleted_count:
            counts["mongo_swept"] += result.deleted_count


def expire_messages(ctx: JobsContext, counts: Counter[str]) -> None:
    settings = ctx.settings
    for _ in range(settings.job_max_batches):
        if not ctx.leading():
            counts["stopped_not_leader"] += 1
            return
        if expire_batch(ctx, counts) < settings.job_batch_size:
            break
    # After the rows: a copy swept before its row was handled is simply not found there.
    sweep_stored_copies(ctx, utcnow(), counts)
