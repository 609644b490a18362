"""One batch of accepted messages: store, mark, fan out, queue pushes.

Every step is idempotent, so a batch that fails half way (a backend went down) is simply
run again, and a message delivered twice by the broker does no harm:
1. MongoDB insert_many, unordered; a duplicate id (already stored) is not an error.
2. PostgreSQL, one transaction: mark the messages stored, move the conversations'
   last_message_at, read the members. A message deleted before it was stored has its
   stored copy erased at once and is not delivered.
3. Redis: one `message.new` event per message to every member (all chat instances hear
   it), and, in the same pipeline, which sessions of the members with push targets have
   an open socket (services/common/presence.py).
4. RabbitMQ: a notification job per recipient with push targets whose session has no open
   socket, naming those targets (one confirmed publish for the whole batch).
The consumer acknowledges the broker's deliveries only after all of this returned.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import pymongo
from pydantic import BaseModel, ConfigDict, Field
from pymongo import WriteConcern
from pymongo.errors import BulkWriteError

from services.common.amqp import Outgoing
from services.common.members import members_by_conversation, seeing
from services.common.mongo import MESSAGES
from services.common.presence import SOCKETS_KEY, Online, to_push
from services.common.times import rfc3339
from services.message_processor import store

if TYPE_CHECKING:
    from pymongo.database import Database as MongoDatabase

    from services.message_processor.context import ProcessorContext

log = logging.getLogger(__name__)

DUPLICATE_KEY = 11000


class QueuedMedia(BaseModel):
    """`message.media`: what the file is (its bytes stay in GridFS)."""

    model_config = ConfigDict(extra="ignore")

    id: str = Field(min_length=1, max_length=64)
    content_type: str = Field(min_length=1, max_length=64)
    size: int = Field(ge=1)


class QueuedMessage(BaseModel):
    """The `message` chat published (the contract's message shape)."""

    model_config = ConfigDict(extra="ignore")

    id: str = Field(min_length=1, max_length=64)
    conversation_id: str = Field(min_length=1, max_length=64)
    seq: int = Field(ge=1)
    sender_id: str = Field(min_length=1, max_length=64)
    client_msg_id: str = Field(min_length=1, max_length=128)
    # Opaque text of up to 65536 characters when encrypted (never parsed, never pushed).
    body: str = Field(max_length=65536)
    created_at: datetime
    expires_at: datetime | None = None
    status: str = "sent"
    encrypted: bool = False
    reply_to: str | None = Field(default=None, max_length=64)
    edited_at: datetime | None = None
    media: QueuedMedia | None = None


class QueuedPayload(BaseModel):
    model_config = ConfigDict(extra="ignore")

    message: QueuedMessage
    request_id: str | None = None


class PoisonMessage(ValueError):
    """A delivery that can never be processed (not JSON, wrong shape): dead-letter it."""


def parse_payload(body: bytes | str) -> QueuedPayload:
    try:
        return QueuedPayload.model_validate(json.loads(body))
    except (ValueError, TypeError) as exc:
        raise PoisonMessage(str(exc)[:300]) from None


@dataclass
class BatchResult:
    stored: int = 0
    duplicates: int = 0
    erased: int = 0
    events: int = 0
    notifications: int = 0


def message_json(m: QueuedMessage) -> dict[str, Any]:
    """The contract's `message`, with times formatted as chat formats them."""
    body: dict[str, Any] = {
        "id": m.id,
        "conversation_id": m.conversation_id,
        "seq": m.seq,
        "sender_id": m.sender_id,
        "client_msg_id": m.client_msg_id,
        "body": m.body,
        "created_at": rfc3339(m.created_at),
        "status": m.status,
    }
    if m.expires_at is not None:
        body["expires_at"] = rfc3339(m.expires_at)
    if m.encrypted:
        body["encrypted"] = True
    if m.reply_to is not None:
        body["reply_to"] = m.reply_to
    if m.edited_at is not None:
        body["edited_at"] = rfc3339(m.edited_at)
    if m.media is not None:
        body["media"] = m.media.model_dump()
    return body


def _document(message: QueuedMessage) -> dict[str, Any]:
    return {
        "_id": message.id,
        "conversation_id": message.conversation_id,
        "seq": message.seq,
        "sender_id": message.sender_id,
        "client_msg_id": message.client_msg_id,
        "body": message.body,
        "created_at": message.created_at,
        "expires_at": message.expires_at,
        "deleted": False,
        "encrypted": message.encrypted,
        "reply_to": message.reply_to,
        "edited_at": message.edited_at,
        "media": message.media.model_dump() if message.media is not None else None,
    }


# The broker delivery is acknowledged after this write: it must survive a crash of the
# store right after it answered, so wait for the journal (j), not just memory (w:1).
DURABLE = WriteConcern(w=1, j=True)


def store_in_mongo(mongo: MongoDatabase, messages: list[QueuedMessage]) -> tuple[int, int]:
    """(inserted, duplicates); raises for anything but duplicate ids."""
    collection = mongo.get_collection(MESSAGES, write_concern=DURABLE)
    try:
        result = collection.insert_many([_document(m) for m in messages], ordered=False)
        return len(result.inserted_ids), 0
    except BulkWriteError as exc:
        errors = exc.details.get("writeErrors", [])
        others = [e for e in errors if e.get("code") != DUPLICATE_KEY]
        if others:
            raise
        return exc.details.get("nInserted", 0), len(errors)


def process_batch(ctx: ProcessorContext, payloads: list[QueuedPayload]) -> BatchResult:
    settings = ctx.settings
    result = BatchResult()
    messages = list({p.message.id: p.message for p in payloads}.values())
    request_ids = {p.message.id: p.request_id for p in payloads}
    if not messages:
        return result
    with pymongo.timeout(settings.mongo_attempt_seconds):
        result.stored, result.duplicates = store_in_mongo(ctx.mongo, messages)

    latest: dict[str, datetime] = {}
    for m in messages:
        latest[m.conversation_id] = max(latest.get(m.conversation_id, m.created_at), m.created_at)
    with ctx.db.transaction() as conn:
        marks = store.mark_stored(conn, [m.id for m in messages])
        store.touch_conversations(conn, latest)
        members = members_by_conversation(conn, list(latest))
        targets = store.push_targets(conn, sorted({u for marks_of in members.values() for u in marks_of}))
    erased = {r["id"] for r in marks if r["erased"]}
    if erased:
        ctx.mongo[MESSAGES].update_many(
            {"_id": {"$in": sorted(erased)}}, {"$set": {"body": None, "deleted": True}}
        )
        result.erased = len(erased)
    # Edited before it was stored: the stored copy and the frame carry the last body.
    edits = {r["id"]: r for r in marks if not r["erased"] and r["edited_at"] is not None}
    for message_id, row in edits.items():
        ctx.mongo[MESSAGES].update_one(
            {"_id": message_id}, {"$set": {"body": row["body"], "edited_at": row["edited_at"]}}
        )
    live = [
        m.model_copy(update={"body": edits[m.id]["body"], "edited_at": edits[m.id]["edited_at"]})
        if m.id in edits
        else m
        for m in messages
        if m.id not in erased
    ]

    pipe = ctx.redis.pipeline(transaction=False)
    recipients: list[tuple[QueuedMessage, list[str]]] = []
    for m in live:
        # Who joined after this message was accepted never sees it (nor is pushed it).
        to = seeing(members.get(m.conversation_id, {}), m.seq)
        frame = {"type": "message.new", "message": message_json(m)}
        pipe.publish(settings.events_channel, json.dumps({"to": to, "frame": frame}, separators=(",", ":")))
        recipients.append((m, [u for u in to if u != m.sender_id and u in targets]))
    # Each recipient with push targets once per batch: the sessions with an open socket.
    asked = sorted({u for _, users in recipients for u in users})
    now = time.time()
    for user in asked:
        pipe.zrangebyscore(SOCKETS_KEY.format(user_id=user), now, "+inf")
    replies = pipe.execute()
    result.events = len(live)
    online = {user: Online.from_members(r) for user, r in zip(asked, replies[len(live) :], strict=True)}

    jobs: list[Outgoing] = []
    for m, users in recipients:
        for user in users:
            device_ids = to_push(targets[user], online[user])
            if not device_ids:
                continue
            jobs.append(
                Outgoing(
                    {
                        "type": "message",
                        "user_id": user,
                        "device_ids": device_ids,
                        "conversation_id": m.conversation_id,
                        "message_id": m.id,
                        "sender_id": m.sender_id,
                        "sent_at": rfc3339(m.created_at),
                        # An encrypted body is the clients' own: never in a push.
                        "body": None if m.encrypted else m.body,
                        # A file's type only (never its bytes), and nothing of an encrypted message.
                        "media_type": m.media.content_type
                        if m.media is not None and not m.encrypted
                        else None,
                        "request_id": request_ids.get(m.id),
                    },
                    message_id=f"{m.id}:{user}",
                )
            )
    # One confirmed publish for the batch's push jobs (publish all, wait for the confirms once).
    ctx.notifications.publish_many(settings.notifications_exchange, settings.notifications_routing_key, jobs)
    result.notifications = len(jobs)
    return result
