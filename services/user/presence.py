"""Whether a user is online, read from Redis.

The key is `presence:{user_id}` (the user's UUID in canonical lower-case form). The chat
service owns it: it sets the key when a user's WebSocket connects (value: the chat
instance holding the connection) with a TTL, refreshes the TTL on every heartbeat, and
deletes it when the user's last connection closes, writing `accounts.users.last_seen`
then. A key that exists means online; a chat instance that dies simply lets it expire.
This service only reads it, and shows it only to whom the user's `last_seen_visibility`
allows (`may_see_presence`).
"""

from __future__ import annotations

import redis

from services.common.presence import PRESENCE_KEY


def presence_key(user_id: str) -> str:
    return PRESENCE_KEY.format(user_id=user_id)


def is_online(client: redis.Redis, user_id: str) -> bool:
    return bool(client.exists(presence_key(user_id)))


def may_see_presence(visibility: str, *, is_self: bool, viewer_is_contact: bool) -> bool:
    """Whether a viewer may see a user's online state and last seen, by the user's
    `last_seen_visibility`: `everyone`; `contacts` (the user keeps the viewer as a contact);
    `nobody`. The user always sees themself. (Blocks are checked before this.) chat and
    scheduled_jobs apply the same rule to presence frames: services/common/watchers.py."""
    if is_self or visibility == "everyone":
        return True
    return visibility == "contacts" and viewer_is_contact
