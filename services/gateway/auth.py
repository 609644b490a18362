"""Access tokens, checked once at the gateway.

Every forwarded route needs `Authorization: Bearer <access_token>` (401 `unauthorized`
otherwise) except the contract's public ones: register, login and refresh. Logout needs
one too (it revokes the caller's own refresh-token family). /api/v1/health,
/api/v1/openapi.json and /health, /ready, /metrics are public. The token is verified with
the public key only (services.common.auth); the service behind gets the same
`Authorization` header and checks it again itself (see proxy.py).

WebSocket: the gateway does not proxy `GET /ws`. nginx sends the upgrade straight to chat,
which refuses a missing or bad token with 401 before upgrading (benchmarks/README.md:
checking it there costs a quarter of a millisecond; an nginx `auth_request` hop to the
gateway would about double the cost of an upgrade).
"""

from __future__ import annotations

from flask import request

from services.common.auth import require_user
from services.gateway.routing import PUBLIC_AUTH_PATHS

# Routes that need no token at all.
PUBLIC_BLUEPRINTS = frozenset({"health", "api_health", "openapi"})


def needs_token() -> bool:
    if request.endpoint is None:
        # No route matched: routing answers 404/405 whoever asks.
        return False
    if request.blueprint in PUBLIC_BLUEPRINTS:
        return False
    return request.path not in PUBLIC_AUTH_PATHS


def authenticate() -> None:
    """before_request: verify the caller's access token once, for every route that needs one.

    Runs before the rate limiter, which counts authenticated requests per verified user.
    """
    if needs_token():
        require_user()  # sets g.user_id, or raises Unauthorized (401)
