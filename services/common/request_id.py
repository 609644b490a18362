"""X-Request-ID: taken from the client when sane, else generated; echoed on every response.

The id lives in a context variable, so log lines written anywhere while a request runs
carry it (and code outside Flask, such as queue consumers, can set it the same way).
"""

from __future__ import annotations

import re
import uuid
from contextvars import ContextVar

from flask import Flask, Response, g, request

HEADER = "X-Request-ID"
# Anything else (too long, spaces, quotes, control characters) could poison logs or headers.
SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,128}")

current_request_id: ContextVar[str | None] = ContextVar("current_request_id", default=None)


def new_request_id() -> str:
    return uuid.uuid4().hex


def accept_request_id(candidate: str | None) -> str:
    """The client's id if it is sane, otherwise a fresh one."""
    if candidate and SANE_REQUEST_ID.fullmatch(candidate):
        return candidate
    return new_request_id()


def init_request_ids(app: Flask) -> None:
    @app.before_request
    def _take_request_id() -> None:
        g.request_id = accept_request_id(request.headers.get(HEADER))
        g.request_id_token = current_request_id.set(g.request_id)

    @app.after_request
    def _echo_request_id(response: Response) -> Response:
        response.headers[HEADER] = g.get("request_id") or new_request_id()
        return response

    @app.teardown_request
    def _forget_request_id(_exc: BaseException | None) -> None:
        token = g.pop("request_id_token", None)
        if token is not None:
            try:
                current_request_id.reset(token)
            except ValueError:  # set in another context (streamed responses): just clear it
                current_request_id.set(None)
