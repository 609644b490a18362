"""Cut-offs of the retention settings."""

from __future__ import annotations

from datetime import datetime, timedelta


def retention_cutoff(now: datetime, days: float) -> datetime:
    """The moment before which something kept for `days` days is due for deletion."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    return now - timedelta(days=days)
