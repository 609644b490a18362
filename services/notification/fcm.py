"""Firebase Cloud Messaging, HTTP v1: `POST {base}/v1/projects/{project}/messages:send`.

Authorization is an OAuth 2.0 access token. With a service-account key it is obtained by
the JWT bearer grant (RFC 7523: an RS256 assertion signed with the key, posted to the
key's token_uri) and kept until five minutes before it expires; this is what Google's
auth libraries do, done here with PyJWT so the service needs no Google SDK and the whole
exchange can be pointed at a local receiver. A static token serves tests.

Error answers (https://firebase.google.com/docs/reference/fcm/rest/v1/ErrorCode) carry
`error.status` and, in `error.details`, an FcmError `errorCode`:
UNREGISTERED (404) and a token named invalid by INVALID_ARGUMENT (400) mean the token is
dead; SENDER_ID_MISMATCH (403) means it belongs to another project; QUOTA_EXCEEDED (429),
UNAVAILABLE (503) and INTERNAL (500) pass. Any other INVALID_ARGUMENT is our payload's
fault, and must not cost the user a device.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

import httpx
import jwt
from cryptography.hazmat.primitives import serialization

from services.notification.base import AlertStyle, Device, Outcome, PushPayload, SendResult
from services.notification.transport import json_object, overloaded, transport_failure

log = logging.getLogger(__name__)

SCOPE = "https://www.googleapis.com/auth/firebase.messaging"
ASSERTION_LIFETIME_SECONDS = 3600
# Refresh this long before expiry, so no push goes out with a token that dies in flight.
REFRESH_MARGIN_SECONDS = 300
FCM_ERROR_TYPE = "type.googleapis.com/google.firebase.fcm.v1.FcmError"
BAD_REQUEST_TYPE = "type.googleapis.com/google.rpc.BadRequest"


class TokenUnavailable(Exception):
    """No access token could be had; `retryable` says whether a later try may succeed."""

    def __init__(self, message: str, *, retryable: bool):
        super().__init__(message)
        self.retryable = retryable


class AccessTokens(Protocol):
    # Whether invalidate() leads to a different token (a static one stays the same).
    refreshable: bool

    def get(self) -> str: ...

    def invalidate(self) -> None: ...


class StaticAccessToken:
    refreshable = False

    def __init__(self, token: str):
        self._token = token

    def get(self) -> str:
        return self._token

    def invalidate(self) -> None:
        pass


class ServiceAccountTokens:
    """OAuth 2.0 access tokens for a Google service account, cached until near expiry."""

    refreshable = True

    def __init__(
        self,
        account: dict[str, Any],
        client: httpx.Client,
        *,
        clock: Callable[[], float] = time.time,
    ):
        self._account = account
        # Parsed once: jwt.encode would otherwise load (and check) the PEM key on every fetch.
        self._key = serialization.load_pem_private_key(account["private_key"].encode(), password=None)
        self._client = client
        self._clock = clock
        self._lock = threading.Lock()
        self._token: str | None = None
        self._expires_at = 0.0

    def get(self) -> str:
        with self._lock:
            if self._token is None or self._clock() >= self._expires_at - REFRESH_MARGIN_SECONDS:
                self._token, self._expires_at = self._fetch()
            return self._token

    def invalidate(self) -> None:
        with self._lock:
            self._token = None

    def _assertion(self, now: float) -> str:
        account = self._account
        claims = {
            "iss": account["client_email"],
            "scope": SCOPE,
            "aud": account["token_uri"],
            "iat": int(now),
            "exp": int(now) + ASSERTION_LIFETIME_SECONDS,
        }
        headers = {"kid": account["private_key_id"]} if account.get("private_key_id") else None
        return jwt.encode(claims, self._key, algorithm="RS256", headers=headers)

    def _fetch(self) -> tuple[str, float]:
        now = self._clock()
        try:
            response = self._client.post(
                self._account["token_uri"],
                data={
                    "grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer",
                    "assertion": self._assertion(now),
                },
            )
        except httpx.HTTPError as exc:
            raise TokenUnavailable(f"token endpoint: {type(exc).__name__}", retryable=True) from exc
        answer = json_object(response)
        if response.status_code != 200 or not isinstance(answer.get("access_token"), str):
            # 400/401 here means the key is revoked or wrong: retrying will not fix it.
            retryable = response.status_code == 429 or response.status_code >= 500
            error = answer.get("error") or response.reason_phrase
            message = f"token endpoint answered {response.status_code} {error}"
            raise TokenUnavailable(message, retryable=retryable)
        expires_in = answer.get("expires_in")
        lifetime = float(expires_in) if isinstance(expires_in, int | float) else ASSERTION_LIFETIME_SECONDS
        log.info("fcm access token obtained", extra={"expires_in": lifetime})
        return answer["access_token"], now + lifetime


class FcmSender:
    platform = "fcm"

    def __init__(
        self,
        *,
        base_url: str,
        project_id: str,
        tokens: AccessTokens,
        client: httpx.Client,
        alert: AlertStyle,
    ):
        self.url = f"{base_url.rstrip('/')}/v1/projects/{project_id}/messages:send"
        self._tokens = tokens
        self._client = client
        self._alert = alert

    def message(self, device: Device, payload: PushPayload) -> dict[str, Any]:
        """The request body. With a body: a notification (shown by the system) plus data.
        Ids only: data alone, at high priority, so the app wakes, fetches the message
        itself and shows it; Google never sees the text."""
        data = payload.fields()  # every value a string, as FCM requires
        message: dict[str, Any] = {"token": device.token, "data": data, "android": {"priority": "high"}}
        if payload.body is not None:
            body = self._alert.body(payload.body)
            data["body"] = body
            message["notification"] = {"title": self._alert.title, "body": body}
        return {"message": message}

    def send(self, device: Device, payload: PushPayload) -> SendResult:
        try:
            token = self._tokens.get()
        except TokenUnavailable as exc:
            outcome = Outcome.RETRYABLE_FAILURE if exc.retryable else Outcome.PERMANENT_FAILURE
            return SendResult(outcome, reason=str(exc))
        try:
            response = self._client.post(
                self.url,
                json=self.message(device, payload),
                headers={"Authorization": f"Bearer {token}"},
            )
        except httpx.HTTPError as exc:
            return transport_failure(exc)
        return self._read(response)

    def _read(self, response: httpx.Response) -> SendResult:
        status = response.status_code
        if 200 <= status < 300:
            return SendResult(Outcome.DELIVERED, status=status)
        error = json_object(response).get("error")
        error = error if isinstance(error, dict) else {}
        code = fcm_error_code(error)
        dead = dead_token_reason(status, code, error)
        if dead:
            return SendResult(Outcome.INVALID_TOKEN, status=status, reason=dead)
        if status == 401 and self._tokens.refreshable:
            # The access token was revoked or expired early: the next try fetches another.
            self._tokens.invalidate()
            return SendResult(Outcome.RETRYABLE_FAILURE, status=status, reason=code or "UNAUTHENTICATED")
        retry = overloaded(response, code)
        if retry is not None:
            return retry
        return SendResult(Outcome.PERMANENT_FAILURE, status=status, reason=code or response.reason_phrase)

    def close(self) -> None:
        self._client.close()


def fcm_error_code(error: dict[str, Any]) -> str:
    """The FcmError errorCode when given (more precise), else the canonical status."""
    for detail in error.get("details") or []:
        if isinstance(detail, dict) and detail.get("@type") == FCM_ERROR_TYPE and detail.get("errorCode"):
            return str(detail["errorCode"])
    return str(error.get("status") or "")


def dead_token_reason(status: int, code: str, error: dict[str, Any]) -> str | None:
    """Why the answer means the token is dead for good, or None when it does not."""
    if code == "UNREGISTERED" or (status == 404 and code in ("", "NOT_FOUND")):
        return code or "NOT_FOUND"
    if code == "SENDER_ID_MISMATCH":
        return code
    if code == "INVALID_ARGUMENT" and names_the_token(error):
        return "INVALID_ARGUMENT (token)"
    return None


def names_the_token(error: dict[str, Any]) -> bool:
    """Whether an INVALID_ARGUMENT blames `message.token` (and not, say, our payload)."""
    for detail in error.get("details") or []:
        if isinstance(detail, dict) and detail.get("@type") == BAD_REQUEST_TYPE:
            for violation in detail.get("fieldViolations") or []:
                if isinstance(violation, dict) and violation.get("field") == "message.token":
                    return True
    return "registration token" in str(error.get("message", "")).lower()
