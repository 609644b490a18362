"""The 64 KiB body cap holds for bodies without Content-Length (chunked) too.

werkzeug's get_data() stops reading such a body at MAX_CONTENT_LENGTH and returns the first
64 KiB as if the body ended there; the gateway used to forward that truncated body as
complete. Found by tests/e2e/test_accounts_api.py against the deployed gateway (gunicorn
sets `wsgi.input_terminated` for chunked bodies, which the environ below reproduces).
"""

from __future__ import annotations

import io

import pytest
from test_gateway_helpers import auth_headers, gateway_app, with_fake_services

CAP = 64 * 1024
OBJECT = b'{"about": "x"}'


@pytest.fixture
def app():
    return gateway_app()


@pytest.fixture
def services(app):
    return with_fake_services(app)


def post_streamed(app, body: bytes):
    """POST `body` as a server hands over a chunked body: no Content-Length, input terminated."""
    return app.test_client().post(
        "/api/v1/users/me",
        input_stream=io.BytesIO(body),
        headers=auth_headers(**{"Content-Type": "application/json"}),
        environ_overrides={"wsgi.input_terminated": True, "CONTENT_LENGTH": None},
    )


@pytest.mark.parametrize("extra", [1, 6 * 1024, 1024 * 1024])
def test_a_streamed_body_over_the_cap_is_413_and_never_forwarded(app, services, extra):
    # Valid JSON if cut at 64 KiB: forwarding the cut body would even be accepted.
    body = OBJECT + b" " * (CAP - len(OBJECT) + extra)
    response = post_streamed(app, body)
    assert response.status_code == 413
    assert response.get_json()["error"]["code"] == "payload_too_large"
    assert services["user"].seen == []


@pytest.mark.parametrize("size", [len(OBJECT), CAP - 1, CAP])
def test_a_streamed_body_up_to_the_cap_is_forwarded_whole(app, services, size):
    body = OBJECT + b" " * (size - len(OBJECT))
    response = post_streamed(app, body)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert services["user"].last.body == body
