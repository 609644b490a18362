"""Access tokens: EdDSA (Ed25519) JWTs.

The user service signs with the private key; every service verifies with the public key
only, so no other service can mint tokens. Verification pins the algorithm to EdDSA (no
`none`, no HS256 "signed" with the public key's bytes) and requires every claim we rely on.
"""

from __future__ import annotations

import functools
import time
import uuid
from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from flask import Flask, current_app, g, request

from services.common.errors import Unauthorized

ALGORITHM = "EdDSA"
REQUIRED_CLAIMS = ["exp", "iat", "sub", "iss", "aud", "jti"]
# Containers share one host clock; a little leeway covers hosts that do not.
CLOCK_LEEWAY_SECONDS = 5
VERIFIER_EXTENSION = "whatsapp_token_verifier"

P = ParamSpec("P")
R = TypeVar("R")


def load_public_key(pem: str) -> Ed25519PublicKey:
    try:
        key = serialization.load_pem_public_key(pem.encode())
    except (ValueError, TypeError) as exc:
        raise ValueError("not a PEM public key") from exc
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError("not an Ed25519 public key")
    return key


def load_private_key(pem: str) -> Ed25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(pem.encode(), password=None)
    except (ValueError, TypeError) as exc:
        raise ValueError("not an unencrypted PEM private key") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError("not an Ed25519 private key")
    return key


def public_pem_of(private_key: Ed25519PrivateKey) -> str:
    return (
        private_key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def keys_match(private_key_pem: str, public_key_pem: str) -> bool:
    """Whether the public key is the private key's own half."""
    raw = (serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    private_half = load_private_key(private_key_pem).public_key().public_bytes(*raw)
    return private_half == load_public_key(public_key_pem).public_bytes(*raw)


def generate_dev_keypair() -> tuple[str, str]:
    """A fresh (private PEM, public PEM) pair, for tests and development inventories."""
    private_key = Ed25519PrivateKey.generate()
    private_pem = private_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    return private_pem, public_pem_of(private_key)


class AccessTokenSigner:
    """Mints access tokens (user service only: it alone holds the private key)."""

    def __init__(self, private_key_pem: str, *, issuer: str, audience: str, ttl_seconds: int):
        self._key = load_private_key(private_key_pem)
        self.issuer = issuer
        self.audience = audience
        self.ttl_seconds = ttl_seconds

    def issue(self, user_id: str, *, session_id: str | None = None, now: float | None = None) -> str:
        """`session_id`: the session (refresh-token family) the token belongs to, claim `sid`:
        revoking the session ends the sockets opened with its tokens."""
        issued_at = int(time.time() if now is None else now)
        claims: dict[str, Any] = {
            "sub": str(user_id),
            "iss": self.issuer,
            "aud": self.audience,
            "iat": issued_at,
            "exp": issued_at + self.ttl_seconds,
            "jti": uuid.uuid4().hex,
        }
        if session_id is not None:
            claims["sid"] = str(session_id)
        return jwt.encode(claims, self._key, algorithm=ALGORITHM)


class AccessTokenVerifier:
    def __init__(self, public_key_pem: str, *, issuer: str, audience: str):
        self._key = load_public_key(public_key_pem)
        self.issuer = issuer
        self.audience = audience

    def verify(self, token: str) -> dict[str, Any]:
        """The token's claims, or Unauthorized; never anything else for any input."""
        try:
            claims = jwt.decode(
                token,
                self._key,
                algorithms=[ALGORITHM],
                audience=self.audience,
                issuer=self.issuer,
                leeway=CLOCK_LEEWAY_SECONDS,
                options={"require": REQUIRED_CLAIMS, "verify_signature": True},
            )
        except jwt.ExpiredSignatureError:
            raise Unauthorized("access token expired") from None
        except jwt.PyJWTError:
            raise Unauthorized("invalid access token") from None
        # Every token we mint names a user by UUID; anything else must not reach SQL.
        try:
            claims["sub"] = str(uuid.UUID(str(claims["sub"])))
        except ValueError:
            raise Unauthorized("invalid access token") from None
        if "sid" in claims:
            try:
                claims["sid"] = str(uuid.UUID(str(claims["sid"])))
            except ValueError:
                raise Unauthorized("invalid access token") from None
        return claims


def bearer_token(header: str | None) -> str:
    scheme, _, token = (header or "").strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise Unauthorized("missing bearer token")
    return token


def init_auth(app: Flask, verifier: AccessTokenVerifier) -> None:
    app.extensions[VERIFIER_EXTENSION] = verifier


def require_user() -> str:
    """The caller's user id from `Authorization: Bearer <jwt>`, or Unauthorized (401)."""
    if "user_id" not in g:
        verifier: AccessTokenVerifier = current_app.extensions[VERIFIER_EXTENSION]
        claims = verifier.verify(bearer_token(request.headers.get("Authorization")))
        g.user_id, g.session_id = claims["sub"], claims.get("sid")
    return g.user_id


def login_required(view: Callable[P, R]) -> Callable[P, R]:
    """Decorator form of require_user(): the view runs only for an authenticated caller."""

    @functools.wraps(view)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        require_user()
        return view(*args, **kwargs)

    return wrapper
