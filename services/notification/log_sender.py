"""The `log` provider: writes a push to the log instead of sending it (development).

It stands in for providers that are off, so a deployment without FCM or APNs credentials
still shows that a push would have gone out. It logs ids only, never the message body:
logs are shipped to Logstash and kept far longer than a push lives.
"""

from __future__ import annotations

import logging

from services.notification.base import Device, Outcome, PushPayload, SendResult

log = logging.getLogger(__name__)


class LogSender:
    platform = "log"

    def send(self, device: Device, payload: PushPayload) -> SendResult:
        log.info(
            "push written to the log instead of %s",
            device.platform,
            extra={
                "device_id": device.id,
                "device_platform": device.platform,
                "conversation_id": payload.conversation_id,
                "message_id": payload.message_id,
                "sender_id": payload.sender_id,
                "sent_at": payload.sent_at,
            },
        )
        return SendResult(Outcome.DELIVERED, reason="logged")

    def close(self) -> None:
        pass
