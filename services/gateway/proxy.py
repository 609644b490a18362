"""Forwarding /api/v1/... to the owning service, by path prefix (routing.OWNERS).

Method, path, query string, body and content type go through unchanged. Headers are an
allow-list both ways: the service gets the client's `Authorization` (which it checks
itself), `Content-Type`, `Accept` and `User-Agent`, plus what the gateway vouches for:

- `X-Request-ID`: this request's id (the client's if sane, else a new one), so the
  service logs under the same id;
- `X-Forwarded-For` (the chain plus the peer) and `X-Real-IP` (the client, as rate limits see it).

The client gets back the service's status, body and the headers that mean something to
it (`Content-Type`, `Retry-After`, `Location`, `WWW-Authenticate`, `Allow`, caching and
range ones). Hop-by-hop headers, cookies and `Host` never cross.

Media (routing.STREAMED_PREFIXES) streams both ways, a chunk at a time: an upload of 16 MiB
is never whole in this worker, nor a download.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from urllib.parse import quote

import requests
from flask import Blueprint, Response, current_app, g, request

from services.common.app import path_under
from services.common.errors import PayloadTooLarge
from services.common.request_id import HEADER as REQUEST_ID_HEADER
from services.gateway.context import gateway_context
from services.gateway.limits import client_ip
from services.gateway.routing import API_PREFIX, OWNERS, STREAMED_PREFIXES

FORWARDED_REQUEST_HEADERS = (
    "Accept",
    "Authorization",
    "Content-Type",
    "User-Agent",
    "Range",
    "If-Range",
    "If-None-Match",
)
RETURNED_RESPONSE_HEADERS = (
    "Accept-Ranges",
    "Allow",
    "Content-Range",
    "Cache-Control",
    "Content-Type",
    "ETag",
    "Last-Modified",
    "Location",
    "Retry-After",
    "WWW-Authenticate",
)
BODYLESS_STATUSES = frozenset({204, 304})
PROXIED_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"]
STREAM_CHUNK = 64 * 1024
# Characters left as they are when re-encoding the (already decoded) path: RFC 3986's
# sub-delims and the few others a path segment may hold literally.
PATH_SAFE = "/:@!$&'()*+,;=~"

# /api/v1/auth/* is rate limited per client IP, the other forwarded routes per user.
auth_proxy_bp = Blueprint("auth_proxy", __name__)
api_proxy_bp = Blueprint("api_proxy", __name__)


def upstream_headers() -> dict[str, str]:
    """The headers sent to the service: the allow-listed client ones plus the gateway's."""
    headers = {name: request.headers[name] for name in FORWARDED_REQUEST_HEADERS if name in request.headers}
    headers[REQUEST_ID_HEADER] = g.request_id
    forwarded_for = request.headers.get("X-Forwarded-For", "").strip()
    peer = request.remote_addr or "unknown"
    headers["X-Forwarded-For"] = f"{forwarded_for}, {peer}" if forwarded_for else peer
    headers["X-Real-IP"] = client_ip()
    return headers


def upstream_target() -> str:
    """Path and query as received: the path re-encoded as routed, the query string raw."""
    target = quote(request.path, safe=PATH_SAFE)
    if request.query_string:
        target += "?" + request.query_string.decode("latin-1")
    return target


def client_response(answer: requests.Response, *, streamed: bool = False) -> Response:
    if streamed:
        # The service's bytes as they come; the connection goes back to the pool at the end.
        response = Response(answer.raw.stream(STREAM_CHUNK, decode_content=False), status=answer.status_code)
        response.call_on_close(answer.close)
        if "Content-Length" in answer.headers:
            response.headers["Content-Length"] = answer.headers["Content-Length"]
    else:
        response = Response(answer.content, status=answer.status_code)
    # Werkzeug sets text/html by default; the type is the service's, if it has one.
    del response.headers["Content-Type"]
    for name in RETURNED_RESPONSE_HEADERS:
        value = answer.headers.get(name)
        # Flask services label even a 204 text/html; an answer that cannot have a body has no type.
        if value is not None and not (name == "Content-Type" and answer.status_code in BODYLESS_STATUSES):
            response.headers[name] = value
    return response


def request_body() -> bytes:
    """The client's whole body, or PayloadTooLarge (413) when it is over the cap.

    A body with Content-Length over the cap was refused before any view ran. One without
    (chunked) is cut by werkzeug's get_data() at the cap and returned as if it ended there:
    forwarding that would pass a truncated body on as complete (a JSON object padded past
    64 KiB with spaces is even still valid once cut). So when the cap is reached, one more
    byte is read from the server's stream, past werkzeug's limit, to tell whether it ended.
    """
    body = request.get_data(cache=False)
    limit = current_app.config["MAX_CONTENT_LENGTH"]
    if (
        request.content_length is None
        and limit is not None
        and len(body) >= limit
        and request.environ["wsgi.input"].read(1)
    ):
        raise PayloadTooLarge(f"request body larger than {limit // 1024} KiB")
    return body


def streamed_chunks() -> Iterator[bytes]:
    """The client's body a chunk at a time, as it arrives. The body cap is werkzeug's
    (request.max_content_length, set from the route's cap): over it the read raises 413,
    and the service sees the upload end short."""
    stream = request.stream
    while chunk := stream.read(STREAM_CHUNK):
        yield chunk


class SizedBody:
    """A body of known length: `requests` sends it with that Content-Length (its `len`),
    not chunked. (A bare generator is sent chunked; one with a length of 0 would be sent
    as empty.)"""

    def __init__(self, length: int):
        self.length = length

    def __len__(self) -> int:
        return self.length

    def __iter__(self) -> Iterator[bytes]:
        return streamed_chunks()


def is_streamed(path: str) -> bool:
    return any(path_under(path, prefix) for prefix in STREAMED_PREFIXES)


def forward(upstream: str) -> Response:
    streamed = is_streamed(request.path)
    if streamed:
        body: bytes | Iterable[bytes] | None = None
        if request.method in ("POST", "PUT"):
            length = request.content_length
            body = streamed_chunks() if length is None else SizedBody(length) if length else b""
    else:
        # The body cap (64 KiB, 413 above) holds for chunked bodies too: see request_body().
        body = request_body()
    answer = gateway_context().upstreams.request(
        upstream,
        request.method,
        upstream_target(),
        headers=upstream_headers(),
        body=body,
        stream=streamed,
    )
    return client_response(answer, streamed=streamed)


def _proxy_view(prefix: str, upstream: str) -> Callable[..., Response]:
    def view(rest: str = "") -> Response:
        return forward(upstream)

    view.__name__ = f"proxy_{prefix}"
    view.__qualname__ = f"proxy_{prefix}"
    return view


def _register_proxy_routes() -> None:
    for prefix, upstream in OWNERS.items():
        bp = auth_proxy_bp if prefix == "auth" else api_proxy_bp
        view = _proxy_view(prefix, upstream)
        # One endpoint per prefix, so metrics label `/api/v1/users/<path:rest>`, never raw paths.
        for rule in (f"{API_PREFIX}/{prefix}", f"{API_PREFIX}/{prefix}/<path:rest>"):
            bp.add_url_rule(rule, endpoint=prefix, view_func=view, methods=PROXIED_METHODS)


_register_proxy_routes()
