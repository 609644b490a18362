"""Helpers for the gateway's unit tests (no test here; the name keeps it beside them).

The gateway's services are fake: small Flask apps reached through `FlaskAdapter`, a
requests transport adapter mounted on the gateway's own pooled session that hands each
request to the fake app's test client. Nothing listens on a port. Upstream URLs point at
127.0.0.1 ports 1 and 2, where nothing listens either, so a request that missed the
adapter fails fast instead of reaching something real.
"""

from __future__ import annotations

import socket
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import requests
from flask import Flask, Response, jsonify, request
from requests.adapters import BaseAdapter
from requests.structures import CaseInsensitiveDict
from service_helpers import UNREACHABLE_REDIS, bearer, keypair, signer

from services.gateway import create_app
from services.gateway.context import gateway_context
from services.gateway.settings import GatewaySettings

USER_URL = "http://127.0.0.1:1"
CHAT_URL = "http://127.0.0.1:2"


def gateway_env(**overrides: str) -> dict[str, str]:
    env = {
        "WHATSAPP_REDIS_URL": UNREACHABLE_REDIS,
        "WHATSAPP_JWT_PUBLIC_KEY": keypair()[1],
        "WHATSAPP_RATE_LIMIT_STORAGE_URL": "memory://",
        "WHATSAPP_USER_SERVICE_URL": USER_URL,
        "WHATSAPP_CHAT_SERVICE_URL": CHAT_URL,
    }
    env.update(overrides)
    return env


def gateway_settings(**overrides: str) -> GatewaySettings:
    return GatewaySettings.from_env(gateway_env(**overrides))


def gateway_app(**overrides: str) -> Flask:
    app = create_app(gateway_settings(**overrides))
    app.config["TESTING"] = True
    return app


def closed_port() -> int:
    """A port on 127.0.0.1 that was free a moment ago and has nothing listening now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def new_user_id() -> str:
    return str(uuid.uuid4())


def auth_headers(user_id: str | None = None, **headers: str) -> dict[str, str]:
    """A valid bearer token for `user_id` (a new user if None), plus any other headers."""
    return {**bearer(signer().issue(user_id or new_user_id())), **headers}


@dataclass
class SeenRequest:
    method: str
    path: str
    query: bytes
    body: bytes
    headers: dict[str, str]


@dataclass
class FakeService:
    """A service behind the gateway: records every request and answers with an echo.

    `?status=N` makes it answer N (with `Retry-After: 7` and headers that must not reach
    the client); `ready_status` is what its /ready answers.
    """

    name: str
    seen: list[SeenRequest] = field(default_factory=list)
    ready_status: int = 200
    # The X-Request-ID of each /ready request (kept apart from the API traffic in `seen`).
    ready_request_ids: list[str | None] = field(default_factory=list)
    app: Flask = field(init=False)

    def __post_init__(self) -> None:
        self.app = Flask(f"fake-{self.name}")

        @self.app.get("/ready")
        def ready() -> tuple[Response, int]:
            self.ready_request_ids.append(request.headers.get("X-Request-ID"))
            return jsonify({"status": "ok" if self.ready_status == 200 else "degraded"}), self.ready_status

        @self.app.route("/<path:path>", methods=["GET", "POST", "PUT", "PATCH", "DELETE"])
        def echo(path: str) -> Response:
            self.seen.append(
                SeenRequest(
                    method=request.method,
                    path=request.path,
                    query=request.query_string,
                    body=request.get_data(),
                    headers=dict(request.headers),
                )
            )
            status = int(request.args.get("status", "200"))
            if status == 204:
                return Response(status=204)
            response = jsonify({"service": self.name, "method": request.method, "path": request.path})
            response.status_code = status
            if status != 200:
                response.headers["Retry-After"] = "7"
                response.headers["Set-Cookie"] = "session=leaked"
                response.headers["X-Internal-Secret"] = "leaked"
            return response

    @property
    def last(self) -> SeenRequest:
        return self.seen[-1]


class FlaskAdapter(BaseAdapter):
    """A requests transport that hands requests to a Flask app's test client."""

    def __init__(self, app: Flask):
        super().__init__()
        self.client = app.test_client()

    def send(
        self, request: requests.PreparedRequest, stream: bool = False, **kwargs: Any
    ) -> requests.Response:
        url = urlsplit(request.url)
        headers = {k: v for k, v in request.headers.items() if k.lower() != "content-length"}
        body = request.body or b""
        answer = self.client.open(
            url.path,
            method=request.method,
            query_string=url.query,
            headers=headers,
            data=body.encode() if isinstance(body, str) else body,
        )
        response = requests.Response()
        response.status_code = answer.status_code
        response.reason = answer.status.partition(" ")[2]
        response.headers = CaseInsensitiveDict(dict(answer.headers))
        response._content = answer.get_data()
        response.url = request.url
        response.request = request
        response.encoding = "utf-8"
        return response

    def close(self) -> None:
        pass


class FailingAdapter(BaseAdapter):
    """A requests transport whose every request fails with `error`."""

    def __init__(self, error: Exception):
        super().__init__()
        self.error = error

    def send(
        self, request: requests.PreparedRequest, stream: bool = False, **kwargs: Any
    ) -> requests.Response:
        raise self.error

    def close(self) -> None:
        pass


def mount(app: Flask, upstream: str, adapter: BaseAdapter) -> None:
    """Route the gateway's requests to `upstream` (`user`, `chat`) through `adapter`."""
    with app.app_context():
        upstreams = gateway_context().upstreams
        upstreams.session.mount(upstreams.urls[upstream] + "/", adapter)


def with_fake_services(app: Flask) -> dict[str, FakeService]:
    services = {name: FakeService(name) for name in ("user", "chat")}
    for name, service in services.items():
        mount(app, name, FlaskAdapter(service.app))
    return services
