"""MongoDB (the message store) through one pymongo client per process.

pymongo connects lazily and reconnects by itself; timeouts are short so a MongoDB outage
turns into a fast 503 (chat) or a paused batch (message_processor), never a hung worker.
`directConnection=true` belongs in the URL: the stand-in advertises itself as a one-node
replica set at an address the services cannot reach.
"""

from __future__ import annotations

import pymongo
from pymongo.database import Database

from services.common.config import BaseSettings

MESSAGES = "messages"


def create_mongo(url: str, database: str, settings: BaseSettings) -> Database:
    timeout_ms = int(settings.backend_timeout_seconds * 1000)
    client: pymongo.MongoClient = pymongo.MongoClient(
        url,
        serverSelectionTimeoutMS=timeout_ms,
        connectTimeoutMS=timeout_ms,
        socketTimeoutMS=max(timeout_ms, 5000),
        appname=f"whatsapp-{settings.service_name}",
        tz_aware=True,
    )
    return client[database]


def mongo_check(db: Database) -> None:
    """Readiness: the server answers `ping`."""
    db.command("ping")


def ensure_message_indexes(db: Database) -> None:
    """History is read by (conversation_id, seq); a seq is stored once per conversation."""
    db[MESSAGES].create_index(
        [("conversation_id", pymongo.ASCENDING), ("seq", pymongo.ASCENDING)],
        unique=True,
        name="conversation_seq",
    )
    db[MESSAGES].create_index([("expires_at", pymongo.ASCENDING)], name="expires_at", sparse=True)
