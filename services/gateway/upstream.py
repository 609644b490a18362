"""HTTP to the services behind the gateway: one pooled `requests.Session` per app.

Connections are kept alive and reused (an `HTTPAdapter` pool per service host). A refused
or failed connect is retried (`upstream_connect_retries`): nothing was sent yet, so that is
safe for any method. A read that fails or times out is never retried, since the service may
have acted on the request; the client sees 503 `unavailable` and may retry itself
(messages carry `client_msg_id` for exactly that). Redirects are passed back, not followed.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

import requests
from prometheus_client import CollectorRegistry, Counter, Histogram
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from services.common.errors import Unavailable
from services.common.metrics import LATENCY_BUCKETS

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class UpstreamTimeouts:
    connect: float
    read: float


class UpstreamMetrics:
    def __init__(self, registry: CollectorRegistry):
        self.requests_total = Counter(
            "gateway_upstream_requests_total",
            "Requests forwarded to a service, by service and status (`unavailable`: no answer).",
            ["upstream", "status"],
            registry=registry,
        )
        self.duration_seconds = Histogram(
            "gateway_upstream_request_duration_seconds",
            "Time from forwarding a request to the service's complete answer.",
            ["upstream"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )


class Upstreams:
    """The services behind the gateway, by name (`user`, `chat`), reached over one session."""

    def __init__(
        self,
        urls: Mapping[str, str],
        *,
        timeouts: UpstreamTimeouts,
        pool_size: int,
        connect_retries: int,
        metrics: UpstreamMetrics,
    ):
        self.urls = dict(urls)
        self.timeouts = timeouts
        self.metrics = metrics
        self.session = requests.Session()
        # Never pick up HTTP(S)_PROXY or .netrc from the container's environment: these
        # calls stay on the backend network.
        self.session.trust_env = False
        # Only what a forwarded request states itself (no python-requests defaults).
        self.session.headers.clear()
        self.session.headers["Accept-Encoding"] = "identity"
        retry = Retry(
            total=connect_retries,
            connect=connect_retries,
            read=0,
            status=0,
            other=0,
            redirect=False,
            allowed_methods=None,
            raise_on_status=False,
            respect_retry_after_header=False,
        )
        adapter = HTTPAdapter(
            pool_connections=max(1, len(self.urls)), pool_maxsize=pool_size, max_retries=retry
        )
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)

    def request(  # noqa: PLR0913 - keyword-only after the target: headers, body, stream
        self,
        upstream: str,
        method: str,
        path_and_query: str,
        *,
        headers: Mapping[str, str],
        body: bytes | Iterable[bytes] | None,
        stream: bool = False,
    ) -> requests.Response:
        """The service's complete answer (any status), or Unavailable when there is none."""
        url = self.urls[upstream] + path_and_query
        started = time.perf_counter()
        try:
            response = self.session.request(
                method,
                url,
                headers=dict(headers),
                # A streamed body of unknown length (chunked) has len 0 but is no empty body.
                data=None if body is None or body == b"" else body,
                stream=stream,
                timeout=(self.timeouts.connect, self.timeouts.read),
                allow_redirects=False,
            )
        except requests.RequestException as exc:
            self.metrics.requests_total.labels(upstream, "unavailable").inc()
            log.warning(
                "%s service unavailable: %s %s: %s: %s",
                upstream,
                method,
                path_and_query.split("?", 1)[0],
                type(exc).__name__,
                exc,
                extra={"upstream": upstream},
            )
            raise Unavailable(f"the {upstream} service is unavailable") from None
        self.metrics.requests_total.labels(upstream, str(response.status_code)).inc()
        self.metrics.duration_seconds.labels(upstream).observe(time.perf_counter() - started)
        return response

    def ready_check(self, upstream: str, timeout: float, request_id: str | None = None) -> Callable[[], None]:
        """A readiness check (for run_readiness_checks): raises unless the service's /ready is 200."""
        url = self.urls[upstream] + "/ready"
        headers = {"X-Request-ID": request_id} if request_id else {}

        def check() -> None:
            response = self.session.get(
                url, headers=headers, timeout=(timeout, timeout), allow_redirects=False
            )
            if response.status_code != 200:
                raise RuntimeError(f"{upstream} /ready answered {response.status_code}")

        return check

    def close(self) -> None:
        self.session.close()
