"""What every push sender shares: the device, the payload, the outcome and the interface.

A sender never raises for a failed push: it answers an `Outcome`, and the delivery loop
decides what follows (retry, remove the device, give up). The payload is built once per
job, and the ids-only privacy mode is applied there, so no sender can leak a body that
it was never given.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from services.notification.jobs import PushJob


class Outcome(StrEnum):
    DELIVERED = "delivered"
    # The provider says this token will never work again: the device is removed.
    INVALID_TOKEN = "invalid_token"  # noqa: S105 - an outcome, not a password
    # Worth trying again later: 429, 5xx, timeouts, refused connections.
    RETRYABLE_FAILURE = "retryable_failure"
    # Trying again would fail the same way (a refused payload, bad credentials).
    PERMANENT_FAILURE = "permanent_failure"
    # No sender is configured for the device's platform.
    DISABLED = "disabled"


@dataclass(frozen=True)
class Device:
    """A row of accounts.devices. For webhook devices the token is the URL."""

    id: str
    platform: str
    token: str


@dataclass(frozen=True)
class SendResult:
    outcome: Outcome
    # The provider's HTTP status, when it answered.
    status: int | None = None
    # A short reason for logs: the provider's error code, or what went wrong locally.
    reason: str = ""
    # Seconds the provider asked us to wait (Retry-After), when it did.
    retry_after: float | None = None


@dataclass(frozen=True)
class PushPayload:
    """What a push says about one message; `body` is None in ids-only mode."""

    conversation_id: str
    message_id: str
    sender_id: str
    sent_at: str
    body: str | None
    request_id: str | None = None
    type: str = "message"
    media_type: str | None = None

    @classmethod
    def from_job(cls, job: PushJob, *, ids_only: bool) -> PushPayload:
        return cls(
            conversation_id=job.conversation_id,
            message_id=job.message_id,
            sender_id=job.sender_id,
            sent_at=job.sent_at_text(),
            body=None if ids_only else job.body,
            request_id=job.request_id,
            media_type=None if ids_only else job.media_type,
        )

    def fields(self) -> dict[str, str]:
        """The contract's webhook object: `{type, conversation_id, message_id, sender_id, sent_at,
        body?, media_type?}`."""
        fields = {
            "type": self.type,
            "conversation_id": self.conversation_id,
            "message_id": self.message_id,
            "sender_id": self.sender_id,
            "sent_at": self.sent_at,
        }
        if self.body is not None:
            fields["body"] = self.body
        if self.media_type is not None:
            fields["media_type"] = self.media_type
        return fields


@dataclass(frozen=True)
class AlertStyle:
    """How FCM and APNs show a push: the alert's title, and the body cut to fit 4 KiB."""

    title: str = "New message"
    body_max_bytes: int = 1000

    def body(self, text: str) -> str:
        return truncate_utf8(text, self.body_max_bytes)


class Sender(Protocol):
    """One push provider. `platform` labels its metrics and logs (fcm, apns, webhook, log)."""

    platform: str

    def send(self, device: Device, payload: PushPayload) -> SendResult: ...

    def close(self) -> None: ...


class DisabledSender:
    """Stands in for a provider that is off, so a device of that platform is skipped, not lost."""

    def __init__(self, platform: str, reason: str):
        self.platform = platform
        self.reason = reason

    def send(self, device: Device, payload: PushPayload) -> SendResult:
        return SendResult(Outcome.DISABLED, reason=self.reason)

    def close(self) -> None:
        pass


def truncate_utf8(text: str, max_bytes: int) -> str:
    """`text` cut to at most `max_bytes` UTF-8 bytes, on a character boundary, with an ellipsis."""
    encoded = text.encode("utf-8")
    if len(encoded) <= max_bytes:
        return text
    ellipsis = "…"
    room = max_bytes - len(ellipsis.encode("utf-8"))
    return encoded[:room].decode("utf-8", errors="ignore") + ellipsis
