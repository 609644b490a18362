"""The contract's `message` shape, and what message_processor receives, from a row."""

from __future__ import annotations

from typing import Any

from services.common.times import rfc3339


def message_json(row: dict[str, Any]) -> dict[str, Any]:
    """`message` of the contract, from a PostgreSQL row or a MongoDB document."""
    message: dict[str, Any] = {
        "id": str(row.get("id") or row.get("_id")),
        "conversation_id": str(row["conversation_id"]),
        "seq": int(row["seq"]),
        "sender_id": str(row["sender_id"]),
        "client_msg_id": row["client_msg_id"],
        "body": row["body"] if row.get("body") is not None else "",
        "created_at": rfc3339(row["created_at"]),
        "status": "deleted" if row.get("deleted") or row.get("deleted_at") else "sent",
    }
    if row.get("expires_at") is not None:
        message["expires_at"] = rfc3339(row["expires_at"])
    if row.get("encrypted"):
        message["encrypted"] = True
    if row.get("reply_to") is not None:
        message["reply_to"] = row["reply_to"]
    if row.get("edited_at") is not None:
        message["edited_at"] = rfc3339(row["edited_at"])
    return message


def queue_payload(row: dict[str, Any], request_id: str | None) -> dict[str, Any]:
    """What message_processor receives: the message plus the request id that caused it."""
    return {"message": message_json(row), "request_id": request_id}
