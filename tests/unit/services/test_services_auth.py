"""Access tokens: only EdDSA tokens signed by our key, with every claim, are accepted."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid

import jwt
import pytest
from service_helpers import bearer, keypair, signer, store_untouched, user_app, user_settings, verifier

from services.common.app import create_base_app
from services.common.auth import generate_dev_keypair, login_required, require_user
from services.common.errors import Unauthorized

USER_ID = str(uuid.uuid4())
ME = "/api/v1/users/me"


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unsigned_token(header: dict, claims: dict, key: bytes = b"") -> str:
    head = b64(json.dumps(header).encode()) + "." + b64(json.dumps(claims).encode())
    if header["alg"] == "none":
        return head + "."
    return head + "." + b64(hmac.new(key, head.encode(), hashlib.sha256).digest())


def good_claims(**overrides) -> dict:
    settings = user_settings()
    now = int(time.time())
    claims = {
        "sub": USER_ID,
        "iss": settings.jwt_issuer,
        "aud": settings.jwt_audience,
        "iat": now,
        "exp": now + 600,
        "jti": uuid.uuid4().hex,
    }
    claims.update(overrides)
    return claims


@pytest.fixture
def protected_client():
    """A bare app with one protected route that answers the caller's id."""
    app = create_base_app("test", user_settings())

    @app.get("/whoami")
    @login_required
    def whoami():
        return {"user_id": require_user()}

    return app.test_client()


def test_valid_token_is_accepted(protected_client):
    response = protected_client.get("/whoami", headers=bearer(signer().issue(USER_ID)))
    assert response.status_code == 200
    assert response.get_json() == {"user_id": USER_ID}


def test_issued_token_carries_every_required_claim():
    claims = verifier().verify(signer().issue(USER_ID))
    assert {"exp", "iat", "sub", "iss", "aud", "jti"} <= set(claims)
    assert claims["exp"] - claims["iat"] == 900
    assert jwt.get_unverified_header(signer().issue(USER_ID))["alg"] == "EdDSA"


def forged_tokens() -> dict[str, str]:
    private_pem, public_pem = keypair()
    other_private, _ = generate_dev_keypair()
    good = signer().issue(USER_ID)
    head, body, signature = good.split(".")
    flipped = ("A" if signature[0] != "A" else "B") + signature[1:]
    return {
        "alg none": unsigned_token({"alg": "none", "typ": "JWT"}, good_claims()),
        "HS256 with the public key": unsigned_token(
            {"alg": "HS256", "typ": "JWT"}, good_claims(), key=public_pem.encode()
        ),
        "expired": jwt.encode(
            good_claims(iat=int(time.time()) - 7200, exp=int(time.time()) - 3600), private_pem, "EdDSA"
        ),
        "wrong issuer": jwt.encode(good_claims(iss="someone-else"), private_pem, "EdDSA"),
        "wrong audience": jwt.encode(good_claims(aud="another-app"), private_pem, "EdDSA"),
        "missing jti": jwt.encode(
            {k: v for k, v in good_claims().items() if k != "jti"}, private_pem, "EdDSA"
        ),
        "subject not a uuid": jwt.encode(good_claims(sub="admin"), private_pem, "EdDSA"),
        "signed by another key": jwt.encode(good_claims(), other_private, "EdDSA"),
        "tampered payload": head
        + "."
        + b64(json.dumps(good_claims(sub=str(uuid.uuid4()))).encode())
        + "."
        + signature,
        "tampered signature": f"{head}.{body}.{flipped}",
        "garbage": "not.a.jwt",
    }


@pytest.mark.parametrize("case", sorted(forged_tokens()))
def test_bad_tokens_are_refused(protected_client, case):
    token = forged_tokens()[case]
    response = protected_client.get("/whoami", headers=bearer(token))
    assert response.status_code == 401
    assert response.get_json()["error"]["code"] == "unauthorized"
    with pytest.raises(Unauthorized):
        verifier().verify(token)


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": ""}, {"Authorization": "Bearer"}, {"Authorization": "Basic dXNlcjpwYXNz"}],
)
def test_missing_bearer_is_refused(protected_client, headers):
    response = protected_client.get("/whoami", headers=headers)
    assert response.status_code == 401
    assert response.get_json()["error"] == {"code": "unauthorized", "message": "missing bearer token"}


def test_user_routes_refuse_before_touching_the_store():
    app = user_app()
    client = app.test_client()
    for method, path in [
        ("get", ME),
        ("patch", ME),
        ("get", "/api/v1/contacts"),
        ("post", "/api/v1/devices"),
    ]:
        response = getattr(client, method)(path, headers=bearer(forged_tokens()["alg none"]))
        assert response.status_code == 401, (method, path)
    assert store_untouched(app)


def test_expired_token_says_so(protected_client):
    response = protected_client.get("/whoami", headers=bearer(forged_tokens()["expired"]))
    assert response.get_json()["error"]["message"] == "access token expired"
