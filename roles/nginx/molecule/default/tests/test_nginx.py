"""Verify the nginx role: container, health, the ports, TLS with HSTS and the redirect,
security headers, request ids, the contract's error shape for what nginx answers itself
(400, 405, 413, 429, 503), /metrics never exposed, and a config change applied by a reload."""

from __future__ import annotations

from pathlib import Path

import requests
import urllib3
import whatsapp_testlib as lib

urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)
VARS = lib.role_vars()
SPEC = VARS["spec"]
HTTP = f"http://{VARS['address']}:{VARS['http_port']}"
HTTPS = f"https://{VARS['address']}:{VARS['https_port']}"


def get(path: str, **kwargs) -> requests.Response:
    return requests.get(HTTPS + path, verify=False, timeout=10, allow_redirects=False, **kwargs)  # noqa: S501


def test_container_follows_the_spec(host):
    data = lib.assert_standard_container(host, SPEC, VARS["restart_policy"])
    assert data["HostConfig"]["ReadonlyRootfs"] is True


def test_only_http_and_https_published_on_loopback(host):
    for port in (VARS["http_port"], VARS["https_port"]):
        assert lib.listening_addresses(host, port) == {VARS["address"]}


def test_health_over_http_and_https():
    assert requests.get(HTTP + "/health", timeout=5).json() == {"status": "ok", "service": "nginx"}
    answer = get("/health")
    assert answer.status_code == 200 and answer.json()["service"] == "nginx"


def test_http_redirects_to_https_and_https_sends_hsts():
    answer = requests.get(HTTP + "/api/v1/health", timeout=5, allow_redirects=False)
    assert answer.status_code == 308 and answer.headers["Location"].startswith("https://")
    assert "max-age=" in get("/").headers["Strict-Transport-Security"]


def test_security_headers_and_the_web_client():
    answer = get("/")
    assert answer.status_code == 200 and "<html" in answer.text
    headers = answer.headers
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["X-Frame-Options"] == "DENY"
    assert headers["Referrer-Policy"] == "no-referrer"
    assert "default-src 'self'" in headers["Content-Security-Policy"]
    assert "nginx/" not in headers.get("Server", "")


def test_request_ids_are_generated_or_passed_through():
    assert len(get("/health").headers["X-Request-ID"]) >= 16
    assert (
        get("/", headers={"X-Request-ID": "client-chosen-id-1"}).headers["X-Request-ID"]
        == "client-chosen-id-1"
    )


def test_a_backend_that_is_not_there_is_503_in_the_contract_shape():
    answer = get("/api/v1/users/me")
    assert answer.status_code == 503
    assert answer.json()["error"]["code"] == "unavailable"


def test_an_oversized_body_is_413_in_the_contract_shape():
    answer = requests.post(HTTPS + "/api/v1/users", data=b"x" * (65 * 1024), verify=False, timeout=10)  # noqa: S501
    assert answer.status_code == 413
    assert answer.json()["error"]["code"] == "payload_too_large"


def test_trace_and_malformed_requests_get_the_contract_shape():
    trace = requests.request("TRACE", HTTPS + "/api/v1/users/me", verify=False, timeout=10)  # noqa: S501
    assert trace.status_code == 405
    assert trace.json()["error"]["code"] == "method_not_allowed"
    assert trace.headers["X-Request-ID"]
    # A Host header with a space is malformed HTTP: nginx answers 400 itself.
    bad = requests.get(HTTPS + "/health", headers={"Host": "a b"}, verify=False, timeout=10)  # noqa: S501
    assert bad.status_code == 400
    assert bad.json()["error"]["code"] == "validation_error"


def test_auth_endpoints_are_rate_limited_with_retry_after():
    answers = [
        requests.post(HTTPS + "/api/v1/auth/login", json={}, verify=False, timeout=10)  # noqa: S501
        for _ in range(15)
    ]
    limited = [a for a in answers if a.status_code == 429]
    assert limited, [a.status_code for a in answers]
    assert limited[0].json()["error"]["code"] == "rate_limited"
    assert int(limited[0].headers["Retry-After"]) >= 1


def test_service_metrics_and_readiness_are_not_exposed():
    for path in ("/metrics", "/ready"):
        assert get(path).status_code == 404, path


def test_a_changed_setting_is_validated_and_reloaded_not_restarted(host):
    before = lib.inspect(host, SPEC["name"])
    output = lib.converge_again("-e", "nginx_rate_limit_api_burst=321")
    assert "RUNNING HANDLER [nginx : Reload nginx]" in output
    assert "whatsapp-nginx: nginx -s reload" in output, output[-3000:]
    assert "burst=321" in Path(VARS["config"]).read_text()
    after = lib.inspect(host, SPEC["name"])
    assert after["Id"] == before["Id"] and after["State"]["StartedAt"] == before["State"]["StartedAt"]
    assert get("/health").status_code == 200
    lib.converge_again()  # back to the scenario's own value
