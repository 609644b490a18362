"""Typed API errors and the one place that renders every error in the contract's shape.

Views raise `NotFound(...)`, `Conflict(...)`...; `register_error_handlers(app)` turns those,
werkzeug's HTTP errors, pydantic validation errors and anything unexpected into
`{"error": {"code": "<snake_case>", "message": "<human text>"}}`; a WebSocket handshake
that wsproto refuses is the client's 400 `validation_error`. Unexpected exceptions
are logged with their traceback and never shown to the client: a lost backend connection
answers 503 `unavailable`, anything else 500 `internal_error`.
"""

from __future__ import annotations

import logging
from typing import Any

import pydantic
import pymongo.errors
import simple_websocket
import wsproto.events
import wsproto.utilities
from flask import Flask, Response, jsonify
from werkzeug.exceptions import HTTPException

from services.common.backends import backend_down

log = logging.getLogger(__name__)


def _unavailable(exc: Exception) -> bool:
    """A backend down (services/common/backends.py), or any failure of MongoDB: the message
    store is a backend too; what it holds is retried, never half-answered."""
    return backend_down(exc) or isinstance(exc, pymongo.errors.PyMongoError)


# A WebSocket opening handshake that wsproto refuses (the client broke the protocol), or one
# simple_websocket could not complete; raised before any byte of the upgrade is written, so
# a plain answer is still possible. chat checks the handshake first (services.chat.handshake);
# these are the net behind that check.
HANDSHAKE_ERRORS: tuple[type[BaseException], ...] = (
    wsproto.utilities.RemoteProtocolError,
    simple_websocket.ConnectionError,
)

# Codes for werkzeug's own errors (routing, body size, ...), by status.
HTTP_STATUS_CODES = {
    400: "validation_error",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "validation_error",
    429: "rate_limited",
    503: "unavailable",
}


class ApiError(Exception):
    """An error the client caused or must know about; rendered with `status` and `code`."""

    status = 500
    code = "internal_error"
    default_message = "internal error"

    def __init__(
        self, message: str | None = None, *, code: str | None = None, headers: dict[str, str] | None = None
    ):
        self.message = message or self.default_message
        if code:
            self.code = code
        self.headers = headers or {}
        super().__init__(self.message)


class ValidationError(ApiError):
    status, code, default_message = 400, "validation_error", "invalid request"


class Unauthorized(ApiError):
    status, code, default_message = 401, "unauthorized", "authentication required"

    def __init__(self, message: str | None = None, **kwargs: Any):
        super().__init__(message, **kwargs)
        # RFC 6750: tell the client which scheme to use.
        self.headers.setdefault("WWW-Authenticate", "Bearer")


class Forbidden(ApiError):
    """403; `code` may be more specific than `forbidden`, e.g. `blocked`."""

    status, code, default_message = 403, "forbidden", "forbidden"


class NotFound(ApiError):
    status, code, default_message = 404, "not_found", "not found"


class Conflict(ApiError):
    status, code, default_message = 409, "conflict", "conflict"


class PayloadTooLarge(ApiError):
    status, code, default_message = 413, "payload_too_large", "request body too large"


class RateLimited(ApiError):
    status, code, default_message = 429, "rate_limited", "too many requests"

    def __init__(self, message: str | None = None, *, retry_after: int = 1, **kwargs: Any):
        super().__init__(message, **kwargs)
        self.headers["Retry-After"] = str(max(1, int(retry_after)))


class Unavailable(ApiError):
    status, code, default_message = 503, "unavailable", "a backend service is unavailable"


def error_response(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> Response:
    response = jsonify({"error": {"code": code, "message": message}})
    response.status_code = status
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def describe_validation_error(exc: pydantic.ValidationError) -> str:
    """A readable message naming the field(s): `display_name: at most 64 characters`."""
    parts = []
    for error in exc.errors(include_url=False, include_input=False, include_context=False):
        where = ".".join(str(p) for p in error["loc"])
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "missing":
            message = "is required"
        elif error["type"] == "extra_forbidden":
            message = "is not an accepted field"
        parts.append(f"{where}: {message}" if where else message)
    return "; ".join(parts) or "invalid request"


def _render_api_error(exc: ApiError) -> Response:
    return error_response(exc.status, exc.code, exc.message, exc.headers)


def _render_validation_error(exc: pydantic.ValidationError) -> Response:
    return error_response(400, "validation_error", describe_validation_error(exc))


def _render_http_exception(exc: HTTPException) -> Response:
    status = exc.code or 500
    code = HTTP_STATUS_CODES.get(status, "internal_error" if status >= 500 else "bad_request")
    # Keep werkzeug's headers that matter (Allow on 405, Retry-After on 429), not its HTML type.
    headers = {k: v for k, v in exc.get_headers() if k.lower() != "content-type"}
    if status == 429 and "Retry-After" not in headers:
        headers["Retry-After"] = str(int(getattr(exc, "retry_after", None) or 1))
    message = exc.description or exc.name
    if status == 413:
        message = "request body too large"
    return error_response(status, code, message, headers)


def _latin1(value: bytes | str) -> str:
    return value.decode("latin-1") if isinstance(value, bytes) else value


def _render_handshake_error(exc: Exception) -> Response:
    log.info("refused a WebSocket handshake: %s: %s", type(exc).__name__, exc)
    hint = getattr(exc, "event_hint", None)
    # wsproto's own hint carries the headers the RFC asks for (Sec-WebSocket-Version: 13).
    headers = (
        {_latin1(name): _latin1(value) for name, value in hint.headers}
        if isinstance(hint, wsproto.events.RejectConnection)
        else {}
    )
    return error_response(400, "validation_error", "invalid WebSocket handshake", headers)


def _render_unexpected(exc: Exception) -> Response:
    if _unavailable(exc):
        log.error("backend unavailable: %s: %s", type(exc).__name__, exc, exc_info=exc)
        return error_response(503, "unavailable", "a backend service is unavailable")
    log.error("unhandled %s", type(exc).__name__, exc_info=exc)
    return error_response(500, "internal_error", "internal error")


def register_error_handlers(app: Flask) -> None:
    app.register_error_handler(ApiError, _render_api_error)
    app.register_error_handler(pydantic.ValidationError, _render_validation_error)
    app.register_error_handler(HTTPException, _render_http_exception)
    for handshake_error in HANDSHAKE_ERRORS:
        app.register_error_handler(handshake_error, _render_handshake_error)
    app.register_error_handler(Exception, _render_unexpected)
