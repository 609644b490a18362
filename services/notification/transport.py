"""HTTP plumbing the senders share: pooled httpx clients and the reading of failures.

One long-lived client per provider keeps its connections open between pushes (TLS and,
for APNs, the HTTP/2 connection are set up once, not per push). httpx is thread safe, so
consumer threads may share a sender.
"""

from __future__ import annotations

import json
import ssl
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from services import __version__
from services.common.times import utcnow
from services.notification.base import Outcome, SendResult

USER_AGENT = f"whatsapp-notification/{__version__}"
# Pushes are bursty and a deployment talks to three hosts at most; a few idle connections
# per host are enough, and more would only hold sockets.
POOL_LIMITS = httpx.Limits(max_connections=50, max_keepalive_connections=10, keepalive_expiry=60)


def http_client(
    *,
    timeout: float,
    http2: bool = False,
    ca_file: str | None = None,
    h2c: bool = False,
) -> httpx.Client:
    """A pooled client that never follows redirects.

    With `http2`, HTTP/2 is negotiated by ALPN on https URLs (http URLs get HTTP/1.1).
    With `h2c`, http URLs get HTTP/2 with prior knowledge and nothing else: for a server
    that speaks only HTTP/2 (APNs, or a local receiver standing in for it without TLS).
    """
    verify: ssl.SSLContext | bool = ssl.create_default_context(cafile=ca_file) if ca_file else True
    return httpx.Client(
        http1=not h2c,
        http2=http2 or h2c,
        timeout=httpx.Timeout(timeout),
        verify=verify,
        limits=POOL_LIMITS,
        # A redirect could point a webhook past the allow-list at an internal address.
        follow_redirects=False,
        headers={"User-Agent": USER_AGENT},
        # Provider URLs are settings; proxies from the environment are not.
        trust_env=False,
    )


def retry_after_seconds(value: str | None) -> float | None:
    """Retry-After as seconds: delta-seconds or an HTTP date (RFC 9110); None if absent or bad."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, (moment - utcnow()).total_seconds())


def transport_failure(exc: httpx.HTTPError) -> SendResult:
    """A request that got no answer: a timeout or a broken connection may pass, a bad URL will not."""
    if isinstance(exc, httpx.TimeoutException):
        return SendResult(Outcome.RETRYABLE_FAILURE, reason=f"timeout ({type(exc).__name__})")
    if isinstance(exc, httpx.UnsupportedProtocol | httpx.InvalidURL):
        return SendResult(Outcome.PERMANENT_FAILURE, reason=f"{type(exc).__name__}: {exc}")
    return SendResult(Outcome.RETRYABLE_FAILURE, reason=f"{type(exc).__name__}: {exc}")


def overloaded(response: httpx.Response, reason: str = "") -> SendResult | None:
    """The answer to 429 and 5xx (retry, honouring Retry-After); None for any other status."""
    if response.status_code == 429 or response.status_code >= 500:
        return SendResult(
            Outcome.RETRYABLE_FAILURE,
            status=response.status_code,
            reason=reason or response.reason_phrase,
            retry_after=retry_after_seconds(response.headers.get("Retry-After")),
        )
    return None


def json_object(response: httpx.Response) -> dict[str, Any]:
    """The answer's JSON object, or {} when it is none (an HTML page from a proxy)."""
    try:
        parsed = json.loads(response.content)
    except ValueError:
        return {}
    return parsed if isinstance(parsed, dict) else {}
