"""Job prune_refresh_tokens: spent refresh tokens leave accounts.refresh_tokens.

A token row goes `refresh_token_retention_days` after it expired or was revoked, in
batches (one short DELETE each). Used-but-live tokens stay until they expire: the user
service answers the re-use of a spent token by revoking its whole family (the contract),
and it can only recognise a token whose row still exists. Revoked ones may go earlier:
an unknown token and a revoked one get the same answer (401, nothing changes).
A session (accounts.sessions: a token family's device name) goes with its family's last token.
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


def delete_sessions_without_tokens(conn: psycopg.Connection, cutoff: datetime, limit: int) -> int:
    """Sessions older than the cutoff whose family has no token left (a session being made
    inserts its row before its first token, in one transaction: never seen without it)."""
    return conn.execute(
        """
        WITH gone AS (
            SELECT s.id FROM accounts.sessions s
            WHERE s.created_at < %(cutoff)s
              AND NOT EXISTS (SELECT 1 FROM accounts.refresh_tokens t WHERE t.family_id = s.id)
            LIMIT %(limit)s
        )
        , deleted AS (DELETE FROM accounts.sessions s USING gone WHERE s.id = gone.id RETURNING s.id)
        -- The sessions' delivered marks (chat's schema: no foreign key across schemas) go too.
        , marks AS (DELETE FROM conversations.session_marks sm USING deleted WHERE sm.session_id = deleted.id)
        SELECT count(*) AS n FROM deleted
        """,
        {"cutoff": cutoff, "limit": limit},
    ).fetchone()["n"]


def prune_refresh_tokens(ctx: JobsContext, counts: Counter[str]) -> None:
    settings = ctx.settings
    cutoff = retention_cutoff(utcnow(), settings.refresh_token_retention_days)
    for _ in range(settings.job_max_batches):
        if not ctx.leading():
            counts["stopped_not_leader"] += 1
            return
        with ctx.db.connection() as conn:
            deleted = delete_spent_tokens(conn, cutoff, settings.job_batch_size)
            sessions = delete_sessions_without_tokens(conn, cutoff, settings.job_batch_size)
        if deleted:
            counts["deleted"] += deleted
        if sessions:
            counts["sessions_deleted"] += sessions
        if deleted < settings.job_batch_size and sessions < settings.job_batch_size:
            return
