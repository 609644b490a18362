"""Which service owns which part of /api/v1, and which paths need no access token.

The first path segment after /api/v1 names the owner. Paths are forwarded unchanged, so a
service's own routes are the contract's paths (`/api/v1/users/me` at the user service).
"""

from __future__ import annotations

API_PREFIX = "/api/v1"

# First segment after /api/v1 -> service (a key of GatewaySettings.upstream_urls).
OWNERS: dict[str, str] = {
    "auth": "user",
    "users": "user",
    "contacts": "user",
    "blocks": "user",
    "devices": "user",
    "sessions": "user",
    "keys": "user",
    "conversations": "chat",
    "messages": "chat",
    "media": "chat",
}
# Routes whose bodies (uploads) and answers (downloads) stream through, a chunk at a time,
# under their own body cap (GatewaySettings.media_max_bytes) instead of the 64 KiB one.
STREAMED_PREFIXES = (f"{API_PREFIX}/media",)

# The contract's exceptions to "Bearer token on everything" among forwarded routes. Logout
# is not one: it takes the refresh token in the body *and* an access token.
PUBLIC_AUTH_PATHS = frozenset(f"{API_PREFIX}/auth/{name}" for name in ("register", "login", "refresh"))


def owner_of(path: str) -> str | None:
    """The service owning `path` (`/api/v1/users/me` -> `user`), or None."""
    if not path.startswith(f"{API_PREFIX}/"):
        return None
    segment = path[len(API_PREFIX) + 1 :].split("/", 1)[0]
    return OWNERS.get(segment)
