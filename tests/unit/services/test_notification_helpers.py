"""Helpers for the notification tests (no test here; the name keeps it beside them).

The local receivers that stand in for FCM, APNs and webhook endpoints live in
tests/push_receivers.py (the end-to-end push test uses them too); they are re-exported here.
"""

from __future__ import annotations

from typing import Any

from push_receivers import (  # noqa: F401 - re-exported for the notification tests
    HANG_SECONDS,
    H2Receiver,
    HttpReceiver,
    Received,
    Recorder,
    Reply,
    Tls,
    apns_key_pem,
    make_tls,
    rsa_key_pem,
    service_account,
)
from service_helpers import UNREACHABLE_DSN, UNREACHABLE_REDIS, keypair

from services.notification.settings import NotificationSettings

UNREACHABLE_AMQP = "amqp://nobody@127.0.0.1:1/whatsapp"


def notification_env(**overrides: str) -> dict[str, str]:
    """A complete environment with every provider off except webhook (the default list)."""
    env = {
        "WHATSAPP_POSTGRES_DSN": UNREACHABLE_DSN,
        "WHATSAPP_REDIS_URL": UNREACHABLE_REDIS,
        "WHATSAPP_JWT_PUBLIC_KEY": keypair()[1],
        "WHATSAPP_RABBITMQ_URL": UNREACHABLE_AMQP,
        # Tests that hang a request must not wait the production 5 s.
        "WHATSAPP_PUSH_TIMEOUT_SECONDS": "2",
        "WHATSAPP_WEBHOOK_TIMEOUT_SECONDS": "2",
    }
    env.update(overrides)
    return env


def notification_settings(**overrides: str) -> NotificationSettings:
    return NotificationSettings.from_env(notification_env(**overrides))


def apns_env(base_url: str, **overrides: str) -> dict[str, str]:
    env = {
        "WHATSAPP_APNS_BASE_URL": base_url,
        "WHATSAPP_APNS_TEAM_ID": "TEAM123456",
        "WHATSAPP_APNS_KEY_ID": "KEY1234567",
        "WHATSAPP_APNS_PRIVATE_KEY": apns_key_pem(),
        "WHATSAPP_APNS_TOPIC": "com.example.whatsapp",
    }
    env.update(overrides)
    return env


JOB = {
    "type": "message",
    "user_id": "6f1c1a9e-4a57-4d8e-9a39-2b1f6f0d9c11",
    "conversation_id": "0b6f3a55-55f5-4c50-9a36-f9b7d7c0f1a2",
    "message_id": "m-42",
    "sender_id": "9d3d2c7e-1b1a-4d7e-8e43-6c7f5d9b0a33",
    "sent_at": "2026-11-25T10:00:00.123Z",
    "body": "the secret text",
    "request_id": "req-abc.123",
}


def job(**overrides: Any) -> dict[str, Any]:
    return {**JOB, **overrides}
