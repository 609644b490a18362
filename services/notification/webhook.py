"""Webhook devices: the device's token is a URL that gets each push as an HTTP POST.

The body is exactly the contract's object, `{type: "message", conversation_id, message_id,
sender_id, sent_at, body?}` (no `body` in ids-only mode). The user service only registers
URLs on the deployment's allow-list; here, as a second line, anything but http(s) is
refused and redirects are never followed (a redirect could lead past the allow-list to an
internal address).

Answers: 2xx delivered; 404 and 410 say the hook is gone (the device is removed); 408,
429 and 5xx, timeouts and connection errors pass; a redirect or any other 4xx is the
receiver's standing answer and is not retried.
"""

from __future__ import annotations

import json
from urllib.parse import urlsplit

import httpx

from services.common.request_id import HEADER as REQUEST_ID_HEADER
from services.notification.base import Device, Outcome, PushPayload, SendResult
from services.notification.transport import overloaded, transport_failure

GONE = frozenset({404, 410})


class WebhookSender:
    platform = "webhook"

    def __init__(self, *, client: httpx.Client):
        self._client = client

    @staticmethod
    def body(payload: PushPayload) -> bytes:
        return json.dumps(payload.fields(), separators=(",", ":"), ensure_ascii=False).encode()

    def send(self, device: Device, payload: PushPayload) -> SendResult:
        parts = urlsplit(device.token)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            return SendResult(Outcome.PERMANENT_FAILURE, reason="not an http(s) URL")
        headers = {"Content-Type": "application/json"}
        if payload.request_id:
            headers[REQUEST_ID_HEADER] = payload.request_id
        try:
            response = self._client.post(device.token, content=self.body(payload), headers=headers)
        except httpx.HTTPError as exc:
            return transport_failure(exc)
        return self._read(response)

    @staticmethod
    def _read(response: httpx.Response) -> SendResult:
        status = response.status_code
        if 200 <= status < 300:
            return SendResult(Outcome.DELIVERED, status=status)
        if status in GONE:
            return SendResult(Outcome.INVALID_TOKEN, status=status, reason=response.reason_phrase)
        if status == 408:
            return SendResult(Outcome.RETRYABLE_FAILURE, status=status, reason=response.reason_phrase)
        retry = overloaded(response)
        if retry is not None:
            return retry
        reason = "redirect not followed" if 300 <= status < 400 else response.reason_phrase
        return SendResult(Outcome.PERMANENT_FAILURE, status=status, reason=reason)

    def close(self) -> None:
        self._client.close()
