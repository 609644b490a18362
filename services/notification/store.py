"""The SQL notification runs: reading a user's devices, removing one whose token is dead.

notification's login (svc_notification) may only read the accounts schema; removing a
device goes through `accounts.remove_device(uuid)`, which runs with the schema owner's
rights and can do nothing else (migration accounts/0002).
"""

from __future__ import annotations

from typing import Any, Protocol
from uuid import UUID

from services.notification.base import Device


class ConnectionSource(Protocol):
    """services.common.db.Database, or anything whose connection() yields a psycopg connection."""

    def connection(self, timeout: float | None = None) -> Any: ...


LOAD_DEVICES = """
SELECT id::text AS id, platform, token
FROM accounts.devices
WHERE user_id = %s::uuid
ORDER BY created_at, id
"""
REMOVE_DEVICE = "SELECT accounts.remove_device(%s::uuid) AS removed"


def load_devices(db: ConnectionSource, user_id: str | UUID) -> list[Device]:
    """The user's push targets, oldest first (a stable order keeps logs comparable)."""
    with db.connection() as conn:
        rows = conn.execute(LOAD_DEVICES, (str(user_id),)).fetchall()
    return [Device(id=row["id"], platform=row["platform"], token=row["token"]) for row in rows]


def remove_device(db: ConnectionSource, device_id: str) -> bool:
    """Remove a device whose token the provider called invalid; False if it was already gone."""
    with db.connection() as conn:
        row = conn.execute(REMOVE_DEVICE, (device_id,)).fetchone()
    return bool(row and row["removed"])
