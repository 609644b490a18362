"""`/health` (liveness), `/ready` (backends answer) and `/metrics` (Prometheus), at the root.

`/health` never touches a backend: Docker restarts a container whose health fails, and a
database outage must not restart every service. `/ready` runs the checks each service
registered with `add_readiness_check`, all at once, each bounded by a short timeout.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout

from flask import Blueprint, Flask, Response, current_app, jsonify
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from services.common.metrics import metrics_of

log = logging.getLogger(__name__)

CHECKS_EXTENSION = "whatsapp_readiness_checks"
INFO_EXTENSION = "whatsapp_service_info"

ReadinessCheck = Callable[[], object]

bp = Blueprint("health", __name__)


def add_readiness_check(app: Flask, name: str, check: ReadinessCheck) -> None:
    """Register `check` (raises when its backend is not usable) under `name` in /ready."""
    app.extensions.setdefault(CHECKS_EXTENSION, {})[name] = check


def run_readiness_checks(checks: dict[str, ReadinessCheck], timeout: float) -> dict[str, str]:
    """`{name: "ok" | "down"}`; a check that raises or outlives `timeout` is down."""
    if not checks:
        return {}
    results: dict[str, str] = {}
    pool = ThreadPoolExecutor(max_workers=len(checks), thread_name_prefix="ready")
    # One deadline for all: waiting `timeout` per check in turn could add up to n * timeout.
    deadline = time.monotonic() + timeout
    try:
        futures = {name: pool.submit(check) for name, check in checks.items()}
        for name, future in futures.items():
            try:
                future.result(timeout=max(0.0, deadline - time.monotonic()))
                results[name] = "ok"
            except FutureTimeout:
                log.warning("readiness check %s timed out after %.1f s", name, timeout)
                results[name] = "down"
            except Exception as exc:
                log.warning("readiness check %s failed: %s: %s", name, type(exc).__name__, exc)
                results[name] = "down"
    finally:
        # A hung check keeps its thread; /ready must answer anyway.
        pool.shutdown(wait=False, cancel_futures=True)
    return results


@bp.get("/health")
def health() -> Response:
    info = current_app.extensions[INFO_EXTENSION]
    return jsonify({"status": "ok", "service": info["service"], "version": info["version"]})


@bp.get("/ready")
def ready() -> tuple[Response, int]:
    info = current_app.extensions[INFO_EXTENSION]
    checks = run_readiness_checks(current_app.extensions.get(CHECKS_EXTENSION, {}), info["ready_timeout"])
    healthy = all(state == "ok" for state in checks.values())
    body = {"status": "ok" if healthy else "degraded", "checks": checks}
    return jsonify(body), 200 if healthy else 503


@bp.get("/metrics")
def metrics() -> Response:
    return Response(generate_latest(metrics_of().registry), content_type=CONTENT_TYPE_LATEST)
