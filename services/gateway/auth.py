"""Access tokens, checked once at the gateway; and GET /api/v1/auth/verify for nginx.

Every forwarded route needs `Authorization: Bearer <access_token>` (401 `unauthorized`
otherwise) except the contract's public ones: register, login and refresh. Logout needs
one too (it revokes the caller's own refresh-token family). /api/v1/health,
/api/v1/openapi.json, /api/v1/auth/verify and /health, /ready, /metrics are public.
The token is verified with the public key only (services.common.auth); the user id it names
goes to the service as `X-User-ID` (see proxy.py), after any client-sent one was dropped.

WebSocket: the gateway does not proxy `GET /ws`. nginx sends the upgrade straight to chat,
after asking the gateway whether the token is good with an `auth_request` subrequest:

    GET /api/v1/auth/verify
      -> 204, `X-User-ID: <user id>`  the token is valid
      -> 401 `unauthorized`            missing, malformed, expired or forged

The token is read from `Authorization: Bearer ...`, else from an `access_token` query
parameter (browsers cannot set headers on a WebSocket upgrade, so the contract allows
`/ws?access_token=...`): the verify request's own query string, or the query string of the
original URI nginx passes as `X-Original-URI`. A sketch of the nginx side:

    location = /ws {
        auth_request /_verify_token;
        auth_request_set $verified_user_id $upstream_http_x_user_id;
        proxy_set_header X-User-ID $verified_user_id;   # replaces any client-sent one
        proxy_http_version 1.1;
        proxy_set_header Upgrade $http_upgrade;
        proxy_set_header Connection "upgrade";
        proxy_pass http://chat;
    }
    location = /_verify_token {
        internal;
        proxy_pass http://gateway/api/v1/auth/verify;
        proxy_pass_request_body off;
        proxy_set_header Content-Length "";
        proxy_set_header X-Original-URI $request_uri;
    }

nginx answers the client 401 when this endpoint does, and a 500 for anything but
2xx/401/403, which is why it is never rate limited.
"""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

from flask import Blueprint, Response, current_app, g, request

from services.common.auth import VERIFIER_EXTENSION, AccessTokenVerifier, bearer_token, require_user
from services.common.errors import Unauthorized
from services.gateway.routing import API_PREFIX, PUBLIC_AUTH_PATHS

USER_ID_HEADER = "X-User-ID"
ORIGINAL_URI_HEADER = "X-Original-URI"
# Routes that authenticate themselves (verify) or need no token at all.
PUBLIC_BLUEPRINTS = frozenset({"health", "api_health", "openapi", "verify"})

bp = Blueprint("verify", __name__)


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


def _query_token(query: str) -> str | None:
    values = parse_qs(query, keep_blank_values=False).get("access_token")
    return values[0] if values else None


def presented_token() -> str:
    """The header's token, else the `access_token` query parameter; Unauthorized if none."""
    if request.headers.get("Authorization"):
        # A header that is there but wrong is an answer: no falling back to the query.
        return bearer_token(request.headers["Authorization"])
    token = request.args.get("access_token") or _query_token(
        urlsplit(request.headers.get(ORIGINAL_URI_HEADER, "")).query
    )
    if not token:
        raise Unauthorized("missing access token")
    return token


@bp.get(f"{API_PREFIX}/auth/verify")
def verify() -> Response:
    verifier: AccessTokenVerifier = current_app.extensions[VERIFIER_EXTENSION]
    g.user_id = verifier.verify(presented_token())["sub"]
    response = Response(status=204)
    response.headers[USER_ID_HEADER] = g.user_id
    # An answer about one token at one moment: nothing on the way may keep it.
    response.headers["Cache-Control"] = "no-store"
    return response
