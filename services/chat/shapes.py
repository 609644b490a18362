"""The contract's `message` shape, and what message_processor receives, from a row."""

from __future__ import annotations

from typing import Any

from services.common.message_shape import message_json

__all__ = ["message_json", "queue_payload"]


def queue_payload(row: dict[str, Any], request_id: str | None) -> dict[str, Any]:
    """What message_processor receives: the message plus the request id that caused it."""
    return {"message": message_json(row), "request_id": request_id}
