"""Apple Push Notification service over HTTP/2 with a token-based (.p8) provider key.

`POST {base}/3/device/{token}` with `authorization: bearer <provider token>`, an ES256 JWT
(`kid` = key id, `iss` = team id, `iat`). Apple refuses tokens older than an hour and
throttles ones renewed more often than every 20 minutes (TooManyProviderTokenUpdates),
so one token is signed and reused for 50 minutes. APNs only speaks HTTP/2; every push to
it shares one multiplexed connection.

Answers (Apple's "Handling notification responses from APNs"): 200 delivered; 410
Unregistered/ExpiredToken and 400 BadDeviceToken/DeviceTokenNotForTopic mean the token
will never work for this app; 403 ExpiredProviderToken asks for a new provider token;
429 and 5xx pass; anything else is a problem of ours that a retry would repeat.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from typing import Any

import httpx
import jwt
from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePrivateKey

from services.notification.base import AlertStyle, Device, Outcome, PushPayload, SendResult
from services.notification.transport import json_object, overloaded, transport_failure

PROVIDER_TOKEN_LIFETIME_SECONDS = 50 * 60
# APNs device tokens are hex (32 bytes today; Apple says they may grow). Anything else
# can never be delivered, and must not be put into the request path.
DEVICE_TOKEN = re.compile(r"[0-9a-fA-F]{16,400}")
TOKEN_IS_DEAD = frozenset({"BadDeviceToken", "DeviceTokenNotForTopic", "Unregistered", "ExpiredToken"})
PROVIDER_TOKEN_STALE = frozenset({"ExpiredProviderToken"})


class ProviderToken:
    """The ES256 provider token, signed once and reused until it is 50 minutes old."""

    def __init__(
        self,
        *,
        team_id: str,
        key_id: str,
        private_key: EllipticCurvePrivateKey,
        clock: Callable[[], float] = time.time,
    ):
        self._team_id = team_id
        self._key_id = key_id
        self._key = private_key
        self._clock = clock
        self._lock = threading.Lock()
        self._token: str | None = None
        self._issued_at = 0.0

    def get(self) -> str:
        with self._lock:
            now = self._clock()
            if self._token is None or now - self._issued_at >= PROVIDER_TOKEN_LIFETIME_SECONDS:
                self._token = jwt.encode(
                    {"iss": self._team_id, "iat": int(now)},
                    self._key,
                    algorithm="ES256",
                    headers={"kid": self._key_id},
                )
                self._issued_at = now
            return self._token

    def invalidate(self) -> None:
        with self._lock:
            self._token = None


class ApnsSender:
    platform = "apns"

    def __init__(
        self,
        *,
        base_url: str,
        topic: str,
        provider_token: ProviderToken,
        client: httpx.Client,
        alert: AlertStyle,
    ):
        self.base_url = base_url.rstrip("/")
        self._topic = topic
        self._provider_token = provider_token
        self._client = client
        self._alert = alert

    def notification(self, payload: PushPayload) -> dict[str, Any]:
        """The JSON payload: an alert plus the ids as custom keys.

        Ids only: the alert has the title alone and `mutable-content`, so the app's
        notification service extension can fetch the message and fill in the text;
        Apple never sees it.
        """
        alert: dict[str, str] = {"title": self._alert.title}
        aps: dict[str, Any] = {"alert": alert, "sound": "default", "thread-id": payload.conversation_id}
        if payload.body is None:
            aps["mutable-content"] = 1
        else:
            alert["body"] = self._alert.body(payload.body)
        ids = {k: v for k, v in payload.fields().items() if k != "body"}
        return {"aps": aps, **ids}

    def send(self, device: Device, payload: PushPayload) -> SendResult:
        if not DEVICE_TOKEN.fullmatch(device.token):
            return SendResult(Outcome.INVALID_TOKEN, reason="not a hex APNs device token")
        headers = {
            "authorization": f"bearer {self._provider_token.get()}",
            "apns-topic": self._topic,
            "apns-push-type": "alert",
            # 10: deliver now (a message someone is waiting to read), not batched for power.
            "apns-priority": "10",
        }
        try:
            response = self._client.post(
                f"{self.base_url}/3/device/{device.token}", json=self.notification(payload), headers=headers
            )
        except httpx.HTTPError as exc:
            return transport_failure(exc)
        return self._read(response)

    def _read(self, response: httpx.Response) -> SendResult:
        status = response.status_code
        if status == 200:
            return SendResult(Outcome.DELIVERED, status=status)
        reason = str(json_object(response).get("reason") or "")
        if status == 410 or reason in TOKEN_IS_DEAD:
            return SendResult(Outcome.INVALID_TOKEN, status=status, reason=reason or "Unregistered")
        if reason in PROVIDER_TOKEN_STALE:
            self._provider_token.invalidate()
            return SendResult(Outcome.RETRYABLE_FAILURE, status=status, reason=reason)
        retry = overloaded(response, reason)
        if retry is not None:
            return retry
        return SendResult(Outcome.PERMANENT_FAILURE, status=status, reason=reason or response.reason_phrase)

    def close(self) -> None:
        self._client.close()
