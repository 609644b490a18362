"""GET /api/v1/health: the readiness of every service behind the gateway, in one answer.

Each service's own `/ready` is asked at once (in parallel), each bounded by
`health_timeout_seconds`: 200 `{"status": "ok", "services": {"user": "ok", "chat": "ok"}}`
when all answer 200, else 503 with `"status": "degraded"` and `"down"` for the others.
The gateway's own readiness (its Redis) is its `/ready`, like any service.
"""

from __future__ import annotations

from flask import Blueprint, Response, g, jsonify

from services.common.health import run_readiness_checks
from services.gateway.context import gateway_context
from services.gateway.routing import API_PREFIX

bp = Blueprint("api_health", __name__)


@bp.get(f"{API_PREFIX}/health")
def api_health() -> tuple[Response, int]:
    ctx = gateway_context()
    timeout = ctx.settings.health_timeout_seconds
    checks = {
        name: ctx.upstreams.ready_check(name, timeout, request_id=g.get("request_id"))
        for name in ctx.upstreams.urls
    }
    # A little above the per-request timeout, so each check's own timeout reports first.
    services = run_readiness_checks(checks, timeout + 0.5)
    healthy = all(state == "ok" for state in services.values())
    body = {"status": "ok" if healthy else "degraded", "services": services}
    return jsonify(body), 200 if healthy else 503
