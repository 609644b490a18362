"""Job sweep_media: uploads no message carries, and bytes without their row, are removed.

1. Rows of conversations.media older than 24 hours (the contract) that no live message
   carries: never sent, or every message that carried them erased while the file was
   young. One DELETE per batch (conversations.forget_media checks the carrying), then
   their bytes.
2. GridFS files older than a day whose row does not exist: an upload whose row never
   committed (the client gone, PostgreSQL down, a crash), or a deletion that stopped
   between the row and the bytes.
Each step is idempotent; what one run leaves, the next one finds.
"""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

import psycopg

from services.common import media
from services.common.times import utcnow
from services.scheduled_jobs.context import JobsContext


def unsent_uploads(conn: psycopg.Connection, limit: int) -> list[str]:
    rows = conn.execute(
        """
        SELECT x.id FROM conversations.media x
        WHERE x.created_at < now() - make_interval(secs => %s)
        ORDER BY x.created_at LIMIT %s
        """,
        (media.UPLOAD_GRACE_SECONDS, limit),
    ).fetchall()
    return [str(r["id"]) for r in rows]


def rows_of(conn: psycopg.Connection, media_ids: list[str]) -> set[str]:
    rows = conn.execute(
        "SELECT id FROM conversations.media WHERE id = ANY(%s::uuid[])", (media_ids,)
    ).fetchall()
    return {str(r["id"]) for r in rows}


def sweep_media(ctx: JobsContext, counts: Counter[str]) -> None:
    settings = ctx.settings
    for _ in range(settings.job_max_batches):
        if not ctx.leading():
            counts["stopped_not_leader"] += 1
            return
        with ctx.db.transaction() as conn:
            old = unsent_uploads(conn, settings.job_batch_size)
            forgotten = media.forget(conn, old) if old else []
        media.delete_files(ctx.mongo, forgotten)
        if forgotten:
            counts["unsent_removed"] += len(forgotten)
        # Old rows that are carried stay; this batch is the last unless all were removed.
        if len(old) < settings.job_batch_size or not forgotten:
            break
    cutoff = utcnow() - timedelta(seconds=media.UPLOAD_GRACE_SECONDS)
    files = ctx.mongo[f"{media.MEDIA_BUCKET}.files"]
    old_files = [
        d["_id"]
        for d in files.find({"uploadDate": {"$lt": cutoff}}, {"_id": 1})
        .sort("uploadDate", 1)
        .limit(settings.job_batch_size * settings.job_max_batches)
    ]
    if old_files:
        with ctx.db.connection() as conn:
            kept = rows_of(conn, [str(i) for i in old_files])
        stray = [i for i in old_files if str(i) not in kept]
        if stray:
            counts["stray_files_removed"] += media.delete_files(ctx.mongo, stray)
