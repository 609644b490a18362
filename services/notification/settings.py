"""Settings of the notification service: the push providers, privacy and the retry policy.

Every provider endpoint is a variable, so tests (and staging) point them at a local
receiver. A provider whose credentials are absent is not an error: it is disabled, and
`providers.build_senders` says so in one log line at start. Credentials that are present
but malformed are an error (`SettingsError` naming the variable): a deployment that meant
to push must not start silently without it.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any, Literal, Self
from urllib.parse import urlsplit

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ec import SECP256R1, EllipticCurvePrivateKey
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey
from pydantic import Field, field_validator, model_validator

from services.common.config import BaseSettings, SettingsError, check_amqp_url, env_name, pem_from_env
from services.notification.base import AlertStyle

Provider = Literal["fcm", "apns", "webhook", "log"]
APNS_FIELDS = ("apns_team_id", "apns_key_id", "apns_private_key", "apns_topic")
# Where a Google service-account key file sends its token requests when it names none.
GOOGLE_TOKEN_URI = "https://oauth2.googleapis.com/token"  # noqa: S105 - a URL, not a password


def _http_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an http:// or https:// URL")
    return value.rstrip("/")


def parse_service_account(text: str) -> dict[str, Any]:
    """A Google service-account key (the JSON file Firebase hands out), checked for what FCM needs."""
    return dict(_parse_service_account(text))


# Loading an RSA key checks it, which takes tens of milliseconds: validate a text once.
@functools.lru_cache(maxsize=4)
def _parse_service_account(text: str) -> dict[str, Any]:
    try:
        info = json.loads(text)
    except ValueError:
        raise ValueError("not JSON (expected a Google service-account key file)") from None
    if not isinstance(info, dict) or info.get("type") != "service_account":
        raise ValueError('not a service-account key (expected "type": "service_account")')
    for key in ("client_email", "private_key"):
        if not isinstance(info.get(key), str) or not info[key]:
            raise ValueError(f"the service-account key has no {key}")
    try:
        key = serialization.load_pem_private_key(info["private_key"].encode(), password=None)
    except (ValueError, TypeError):
        raise ValueError("the service-account private_key is not an unencrypted PEM key") from None
    if not isinstance(key, RSAPrivateKey):
        raise ValueError("the service-account private_key is not an RSA key")
    _http_url(info.setdefault("token_uri", GOOGLE_TOKEN_URI))
    return info


def load_apns_key(pem: str) -> EllipticCurvePrivateKey:
    """The .p8 APNs auth key: a PKCS#8 P-256 key that signs ES256 provider tokens."""
    try:
        key = serialization.load_pem_private_key(pem.encode(), password=None)
    except (ValueError, TypeError):
        raise ValueError("not an unencrypted PEM private key (the .p8 file from Apple)") from None
    if not isinstance(key, EllipticCurvePrivateKey) or not isinstance(key.curve, SECP256R1):
        raise ValueError("not a P-256 EC key (APNs provider tokens are ES256)")
    return key


class NotificationSettings(BaseSettings):
    service_name: str = Field(default="notification", min_length=1, max_length=64)

    # The broker and the queue the consumer reads (declared by the rabbitmq role).
    rabbitmq_url: str
    notifications_queue: str = Field(default="notifications.send", min_length=1)
    # Jobs the broker hands each consumer at once, and consumers (threads) per process: a
    # job may wait out provider backoff, so several run side by side.
    consumer_prefetch: int = Field(default=20, ge=1, le=1000)
    consumer_concurrency: int = Field(default=4, ge=1, le=64)
    # Longest pause between tries while PostgreSQL (the device list) is down.
    retry_max_delay_seconds: float = Field(default=5.0, gt=0, le=300)

    # Providers in use (comma separated). `log` writes pushes for devices whose own
    # provider is disabled to the log instead (development); it never logs a body.
    push_providers: tuple[Provider, ...] = ("fcm", "apns", "webhook")
    # Send ids only, never the message text: Google, Apple and webhook receivers then see
    # who wrote in which conversation, not what. On by default: the private choice.
    push_privacy_ids_only: bool = True
    # The visible title of FCM and APNs alerts (the job carries no sender display name).
    push_alert_title: str = Field(default="New message", min_length=1, max_length=100)
    # FCM and APNs refuse payloads over 4 KiB; FCM carries the body twice (data and
    # notification), so a longer body is cut to this many UTF-8 bytes with an ellipsis.
    push_body_max_bytes: int = Field(default=1000, ge=16, le=1800)
    # Each FCM or APNs request (connect, send, wait for the answer).
    push_timeout_seconds: float = Field(default=5.0, gt=0, le=60)
    # Retry policy for retryable failures: attempts in all (1 = no retry), and exponential
    # backoff with full jitter: a wait drawn from [0, min(max, base * 2^(attempt-1))].
    push_max_attempts: int = Field(default=4, ge=1, le=10)
    push_retry_base_seconds: float = Field(default=0.5, gt=0, le=60)
    push_retry_max_seconds: float = Field(default=8.0, gt=0, le=300)
    # The push ledger (services/notification/dedup.py): how long a delivery in flight holds
    # its (message, user) claim, longer than a job's attempts take; how long a done push is
    # remembered, so a copy arriving later is not pushed again.
    push_claim_seconds: int = Field(default=300, ge=10, le=3600)
    push_dedup_seconds: int = Field(default=86400, ge=60, le=604800)
    # A PEM CA bundle trusted for the FCM and APNs endpoints instead of the public CAs
    # (a local receiver with its own certificate); unset in production.
    push_ca_file: str | None = None

    # FCM HTTP v1. Credentials: a service-account key (JSON text, or a file via _FILE), or
    # a static bearer token (local receivers and tests; it is never refreshed).
    fcm_base_url: str = "https://fcm.googleapis.com"
    fcm_project_id: str | None = Field(default=None, pattern=r"^[a-z0-9][a-z0-9-]{0,62}$")
    fcm_credentials_json: str | None = None
    fcm_access_token: str | None = None

    # APNs over HTTP/2 with a token-based (.p8) provider key. Sandbox:
    # https://api.sandbox.push.apple.com.
    apns_base_url: str = "https://api.push.apple.com"
    apns_team_id: str | None = Field(default=None, pattern=r"^[A-Z0-9]{10}$")
    apns_key_id: str | None = Field(default=None, pattern=r"^[A-Z0-9]{10}$")
    apns_private_key: str | None = None
    # The app's bundle id, sent as apns-topic.
    apns_topic: str | None = Field(default=None, min_length=1, max_length=255)

    # Webhook devices: a POST to the device's URL (allow-listed when it was registered).
    webhook_timeout_seconds: float = Field(default=5.0, gt=0, le=60)

    @field_validator("rabbitmq_url")
    @classmethod
    def _valid_rabbitmq_url(cls, value: str) -> str:
        return check_amqp_url(value)

    @field_validator("push_ca_file")
    @classmethod
    def _readable_ca_file(cls, value: str | None) -> str | None:
        # Found now rather than as an SSL error when the first push is sent.
        if value is not None and not Path(value).is_file():
            raise ValueError("names no readable file")
        return value

    @field_validator("push_providers", mode="before")
    @classmethod
    def _split_providers(cls, value: object) -> object:
        if isinstance(value, str):
            value = tuple(p.strip().lower() for p in value.split(",") if p.strip())
        return value

    @field_validator("push_providers")
    @classmethod
    def _unique_providers(cls, value: tuple[Provider, ...]) -> tuple[Provider, ...]:
        return tuple(dict.fromkeys(value))

    @field_validator("fcm_base_url", "apns_base_url")
    @classmethod
    def _valid_base_url(cls, value: str) -> str:
        return _http_url(value)

    @field_validator("fcm_credentials_json")
    @classmethod
    def _valid_service_account(cls, value: str | None) -> str | None:
        if value is not None:
            parse_service_account(value)
        return value

    @field_validator("apns_private_key")
    @classmethod
    def _valid_apns_key(cls, value: str | None) -> str | None:
        if value is None:
            return None
        pem = pem_from_env(value)
        load_apns_key(pem)
        return pem

    @model_validator(mode="after")
    def _coherent(self) -> Self:
        if self.push_retry_max_seconds < self.push_retry_base_seconds:
            base, most = env_name("push_retry_base_seconds"), env_name("push_retry_max_seconds")
            raise SettingsError(f"{most} must not be below {base}")
        # Some APNs values without the others is a half-done configuration, not "off".
        apns = {f: getattr(self, f) for f in APNS_FIELDS}
        given = [f for f, v in apns.items() if v]
        if given and len(given) < len(apns):
            missing = ", ".join(env_name(f) for f, v in apns.items() if not v)
            raise SettingsError(f"APNs is half configured: {missing} missing")
        return self

    def alert_style(self) -> AlertStyle:
        return AlertStyle(title=self.push_alert_title, body_max_bytes=self.push_body_max_bytes)

    def fcm_service_account(self) -> dict[str, Any] | None:
        return parse_service_account(self.fcm_credentials_json) if self.fcm_credentials_json else None

    def fcm_project(self) -> str | None:
        """The project id: the explicit setting, else the one in the service-account key."""
        if self.fcm_project_id:
            return self.fcm_project_id
        account = self.fcm_service_account()
        project = account.get("project_id") if account else None
        return project if isinstance(project, str) and project else None

    def disabled_reason(self, provider: Provider) -> str | None:
        """Why `provider` cannot send (None when it can): not chosen, or no credentials."""
        if provider not in self.push_providers:
            return f"not in {env_name('push_providers')}"
        if provider == "fcm":
            if not (self.fcm_credentials_json or self.fcm_access_token):
                either = f"{env_name('fcm_credentials_json')} or {env_name('fcm_access_token')}"
                return f"no credentials ({either})"
            if not self.fcm_project():
                return f"no project id ({env_name('fcm_project_id')})"
        if provider == "apns" and not self.apns_private_key:
            return f"no credentials ({', '.join(env_name(f) for f in APNS_FIELDS)})"
        return None
