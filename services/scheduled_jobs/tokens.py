"""Job prune_refresh_tokens: spent refresh tokens leave accounts.refresh_tokens.

A token row goes `refresh_token_retention_days` after it expired or was revoked, in
batches (one short DELETE each). Used-but-live tokens stay until they expire: the user
service answers the re-use of a spent token by revoking its whole family (the contract),
and it can only recognise a token whose row still exists. Revoked ones may go earlier:
an unknown token and a revoked one get the same answer (401, nothing changes).
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime

import psycopg

from services.common.times import utcnow
from services.scheduled_jobs.context import JobsContext
from services.scheduled_jobs.retention import retention_cutoff


def delete_spent_tokens(conn: psycopg.Connection, cutoff: datetime, limit: int) -> int:
    return conn.execute(
        """
        WITH spent AS (
            SELECT id FROM accounts.refresh_tokens
            WHERE expires_at < %(cutoff)s OR revoked_at < %(cutoff)s
            LIMIT %(limit)s
        )
        DELETE FROM accounts.refresh_tokens t USING spent WHERE t.id = spent.id
        """,
        {"cutoff": cutoff, "limit": limit},
    ).rowcount


def prune_refresh_tokens(ctx: JobsContext, counts: Counter[str]) -> None:
    settings = ctx.settings
    cutoff = retention_cutoff(utcnow(), settings.refresh_token_retention_days)
    for _ in range(settings.job_max_batches):
        if not ctx.leading():
            counts["stopped_not_leader"] += 1
            return
        with ctx.db.connection() as conn:
            deleted = delete_spent_tokens(conn, cutoff, settings.job_batch_size)
        if deleted:
            counts["deleted"] += deleted
        if deleted < settings.job_batch_size:
            return
