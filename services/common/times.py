"""Time helpers: the contract's times are RFC 3339 strings in UTC."""

from __future__ import annotations

from datetime import UTC, datetime


def utcnow() -> datetime:
    return datetime.now(UTC)


def rfc3339(moment: datetime | float | None) -> str | None:
    """`2026-11-25T10:00:00.123Z` from an aware datetime or a Unix timestamp; None stays None."""
    if moment is None:
        return None
    if not isinstance(moment, datetime):
        moment = datetime.fromtimestamp(moment, UTC)
    elif moment.tzinfo is None:
        # Naive datetimes only come from code that meant UTC; never guess a local zone.
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
