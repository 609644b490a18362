"""The contract's `message` shape, from a PostgreSQL row of conversations.messages or a
MongoDB document of the message store: chat answers with it, the user service exports it."""

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
    media = row.get("media")
    if media and message["status"] != "deleted" and row.get("body") is not None:
        message["media"] = media_json(media)
    return message


def media_json(media: dict[str, Any]) -> dict[str, Any]:
    """`message.media`: what the file is, never its bytes (fetched by id, with access checked)."""
    return {"id": str(media["id"]), "content_type": media["content_type"], "size": int(media["size"])}
