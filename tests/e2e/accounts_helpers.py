"""Helpers of the accounts end-to-end tests: settings read from the deployed inventory, one
HTTP client for the gateway, account creation, and access tokens forged the ways attackers do.

Every value that the deployment decides (port, address, token claims, TTL, bcrypt cost,
webhook allow-list, rate limits) is read from the same files Ansible reads, so the tests
follow the inventory instead of repeating its literals.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import secrets
import time
import uuid
from dataclasses import dataclass
from typing import Any

import jwt
import requests
import yaml
from conftest import ROOT, TEST_INVENTORY

# ---- the deployed configuration -----------------------------------------------------------


def _load_vars(*paths) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for path in paths:
        merged.update(yaml.safe_load(path.read_text()) or {})
    return merged


_INVENTORY_VARS = sorted((ROOT / TEST_INVENTORY / "group_vars" / "whatsapp").glob("*.yml"))
# Ansible's precedence for what matters here: role defaults < group_vars/all < the inventory's
# group (group_vars/whatsapp beats group_vars/all).
DEPLOYED = _load_vars(
    ROOT / "roles/user/defaults/main.yml",
    ROOT / "roles/gateway/defaults/main.yml",
    *sorted((ROOT / "group_vars/all").glob("*.yml")),
    *_INVENTORY_VARS,
)

BASE_URL = f"http://{DEPLOYED['whatsapp_publish_address']}:{DEPLOYED['gateway_port']}"
API = f"{BASE_URL}/api/v1"
ISSUER = DEPLOYED["whatsapp_jwt_issuer"]
AUDIENCE = DEPLOYED["whatsapp_jwt_audience"]
ACCESS_TTL = int(DEPLOYED["whatsapp_access_token_ttl"])
WEBHOOK_ALLOWED_HOSTS: list[str] = list(DEPLOYED.get("user_webhook_allowed_hosts") or [])
AUTH_RATE_LIMIT: str = DEPLOYED["gateway_rate_limit_auth"]
MAX_BODY_BYTES = 64 * 1024


def _pem_block(text: str) -> str:
    """The PEM block of a secret; the dev key carries a `dev-only-` label line before it."""
    match = re.search(r"-----BEGIN [A-Z ]+-----.*?-----END [A-Z ]+-----", text, re.S)
    assert match, "no PEM block in the inventory secret"
    return match.group(0) + "\n"


PRIVATE_KEY_PEM = _pem_block(DEPLOYED["whatsapp_jwt_private_key"])
PUBLIC_KEY_PEM = _pem_block(DEPLOYED["whatsapp_jwt_public_key"])


# ---- HTTP ---------------------------------------------------------------------------------

_session = requests.Session()
# Only 127.0.0.1 is spoken to; a proxy from the environment must not get in between.
_session.trust_env = False


def call(  # noqa: PLR0913 - keyword-only options of one request, named at the call
    method: str,
    path: str,
    *,
    token: str | None = None,
    json_body: Any = None,
    data: bytes | str | None = None,
    headers: dict[str, str] | None = None,
    retry_rate_limited: bool = True,
    new_connection: bool = False,
    timeout: float = 30,
) -> requests.Response:
    """One request to the gateway (`path` below /api/v1, or absolute when it starts with /).

    A 429 is retried after its Retry-After (the limiter answers before the request reaches the
    service, so nothing happened): these tests share one client IP and its auth budget, and
    a test about profiles must not fail because another one just spent that budget.
    Only the rate-limit test itself turns that off.

    `new_connection` sends the request on a connection of its own, closed after it: for
    bodies over the cap. gunicorn answers those 413 without reading the body, announces
    keep-alive, and then closes the connection when it cannot drain more than 64 KiB of the
    unread body, so the next request on that pooled connection would fail to connect.
    """
    url = BASE_URL + path if path.startswith("/api/") else API + path
    all_headers = dict(headers or {})
    if token is not None:
        all_headers.setdefault("Authorization", f"Bearer {token}")
    if json_body is not None:
        data = json.dumps(json_body)
        all_headers.setdefault("Content-Type", "application/json")
    for _attempt in range(10):
        if new_connection:
            with requests.Session() as session:
                session.trust_env = False
                response = session.request(method, url, data=data, headers=all_headers, timeout=timeout)
        else:
            response = _session.request(method, url, data=data, headers=all_headers, timeout=timeout)
        if response.status_code != 429 or not retry_rate_limited:
            return response
        time.sleep(float(response.headers.get("Retry-After", "1")))
    return response


def assert_error(response: requests.Response, status: int, code: str) -> str:
    """The contract's error: the status, exactly `{"error": {"code", "message"}}`; the message."""
    assert response.status_code == status, f"{response.status_code} {response.text[:500]}"
    assert response.headers.get("Content-Type", "").startswith("application/json"), response.headers
    body = response.json()
    assert set(body) == {"error"}, body
    assert set(body["error"]) == {"code", "message"}, body
    assert body["error"]["code"] == code, body
    message = body["error"]["message"]
    assert isinstance(message, str) and message.strip(), body
    # No stack trace or internals in any client-facing message.
    assert "Traceback" not in message and "psycopg" not in message, message
    assert response.headers.get("X-Request-ID"), "every response carries X-Request-ID"
    return message


# ---- accounts -----------------------------------------------------------------------------


def random_phone() -> str:
    """A fresh E.164 number (+999 is unassigned; 11 random digits): re-runs never collide."""
    return "+999" + "".join(str(secrets.randbelow(10)) for _ in range(11))


@dataclass
class Account:
    id: str
    phone: str
    password: str
    display_name: str
    access_token: str
    refresh_token: str

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.access_token}"}


def register(display_name: str = "Test User", password: str | None = None) -> Account:
    phone = random_phone()
    password = password or "pw-" + secrets.token_urlsafe(12)
    response = call(
        "POST",
        "/auth/register",
        json_body={"phone": phone, "password": password, "display_name": display_name},
    )
    assert response.status_code == 201, response.text
    body = response.json()
    return Account(
        id=body["user"]["id"],
        phone=phone,
        password=password,
        display_name=display_name,
        access_token=body["access_token"],
        refresh_token=body["refresh_token"],
    )


def login(account: Account) -> dict[str, Any]:
    response = call("POST", "/auth/login", json_body={"phone": account.phone, "password": account.password})
    assert response.status_code == 200, response.text
    return response.json()


# ---- forged access tokens -----------------------------------------------------------------


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def claims_for(user_id: str, **overrides: Any) -> dict[str, Any]:
    """Claims as the user service mints them (valid now), with `overrides` applied."""
    now = int(time.time())
    claims = {
        "sub": user_id,
        "iss": ISSUER,
        "aud": AUDIENCE,
        "iat": now,
        "exp": now + ACCESS_TTL,
        "jti": uuid.uuid4().hex,
    }
    claims.update(overrides)
    return claims


def signed_with_dev_key(claims: dict[str, Any]) -> str:
    """A token signed with the deployment's real (development) private key."""
    return jwt.encode(claims, PRIVATE_KEY_PEM, algorithm="EdDSA")


def unsigned(claims: dict[str, Any]) -> str:
    """`alg: none`: no signature at all."""
    header = b64url(json.dumps({"alg": "none", "typ": "JWT"}).encode())
    return f"{header}.{b64url(json.dumps(claims).encode())}."


def hs256_with_public_key(claims: dict[str, Any]) -> str:
    """HS256 keyed with the public key's PEM bytes: the classic algorithm-confusion forgery.

    Made by hand because PyJWT itself refuses to use a PEM key as an HMAC secret.
    """
    header = b64url(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    payload = b64url(json.dumps(claims).encode())
    signing_input = f"{header}.{payload}".encode()
    signature = hmac.new(PUBLIC_KEY_PEM.encode(), signing_input, hashlib.sha256).digest()
    return f"{header}.{payload}.{b64url(signature)}"


def tampered(token: str) -> str:
    """The same token with one signature byte flipped."""
    header, payload, signature = token.split(".")
    raw = bytearray(base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4)))
    raw[0] ^= 0x01
    return f"{header}.{payload}.{b64url(bytes(raw))}"


def with_payload(token: str, claims: dict[str, Any]) -> str:
    """The token's header and signature around other claims (privilege escalation attempt)."""
    header, _payload, signature = token.split(".")
    return f"{header}.{b64url(json.dumps(claims).encode())}.{signature}"
