"""The JSON shapes the user service answers with."""

from __future__ import annotations

import uuid
from typing import Any

from services.common.errors import NotFound
from services.common.times import rfc3339


def user_json(row: dict[str, Any], *, include_phone: bool) -> dict[str, Any]:
    """`user` = `{id, phone?, display_name, about, avatar_url, created_at}`."""
    user: dict[str, Any] = {"id": str(row["id"])}
    if include_phone:
        user["phone"] = row["phone"]
    user.update(
        display_name=row["display_name"],
        about=row["about"],
        avatar_url=row["avatar_url"],
        created_at=rfc3339(row["created_at"]),
    )
    return user


def seen_by(row: dict[str, Any], viewer_id: str) -> dict[str, Any]:
    """A user as `viewer_id` sees them: the phone only for themselves and their contacts."""
    return user_json(row, include_phone=str(row["id"]) == viewer_id or bool(row.get("is_contact")))


def user_uuid(value: str, what: str = "user") -> str:
    """A canonical UUID string; an id that is no UUID names nothing, so it is a 404."""
    try:
        return str(uuid.UUID(value))
    except (ValueError, AttributeError, TypeError):
        raise NotFound(f"no such {what}") from None
