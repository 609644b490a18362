"""Whether a user is online, read from Redis.

The key is `presence:{user_id}` (the user's UUID in canonical lower-case form). The chat
service owns it: it sets the key when a user's WebSocket connects (value: the chat
instance holding the connection) with a TTL, refreshes the TTL on every heartbeat, and
deletes it when the user's last connection closes, writing `accounts.users.last_seen`
then. A key that exists means online; a chat instance that dies simply lets it expire.
This service only reads it.
"""

from __future__ import annotations

import redis

PRESENCE_KEY = "presence:{user_id}"


def presence_key(user_id: str) -> str:
    return PRESENCE_KEY.format(user_id=user_id)


def is_online(client: redis.Redis, user_id: str) -> bool:
    return bool(client.exists(presence_key(user_id)))
