"""The senders a deployment has, built once from its settings.

`build_senders(settings)` answers one sender per device platform (fcm, apns, webhook).
A provider that is off, or has no credentials, is said so in one log line here, at start,
and stands as a `DisabledSender` (its devices are skipped and counted as `disabled`), or
as the `log` sender when `log` is among WHATSAPP_PUSH_PROVIDERS.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping

from services.notification.apns import ApnsSender, ProviderToken
from services.notification.base import DisabledSender, Sender
from services.notification.fcm import AccessTokens, FcmSender, ServiceAccountTokens, StaticAccessToken
from services.notification.log_sender import LogSender
from services.notification.settings import NotificationSettings, load_apns_key
from services.notification.transport import http_client
from services.notification.webhook import WebhookSender

log = logging.getLogger(__name__)

# The platforms accounts.devices may hold (its CHECK constraint).
DEVICE_PLATFORMS = ("fcm", "apns", "webhook")


def build_fcm(settings: NotificationSettings) -> FcmSender:
    client = http_client(
        timeout=settings.push_timeout_seconds,
        http2=True,
        ca_file=settings.push_ca_file,
    )
    account = settings.fcm_service_account()
    project = settings.fcm_project()
    assert project is not None  # disabled_reason() said fcm can send
    tokens: AccessTokens
    if account is not None:
        tokens = ServiceAccountTokens(account, client)
    else:
        assert settings.fcm_access_token is not None
        tokens = StaticAccessToken(settings.fcm_access_token)
    return FcmSender(
        base_url=settings.fcm_base_url,
        project_id=project,
        tokens=tokens,
        client=client,
        alert=settings.alert_style(),
    )


def build_apns(settings: NotificationSettings) -> ApnsSender:
    # disabled_reason() said apns can send, and the settings allow all four or none.
    assert settings.apns_team_id and settings.apns_key_id and settings.apns_topic
    assert settings.apns_private_key
    return ApnsSender(
        base_url=settings.apns_base_url,
        topic=settings.apns_topic,
        provider_token=ProviderToken(
            team_id=settings.apns_team_id,
            key_id=settings.apns_key_id,
            private_key=load_apns_key(settings.apns_private_key),
        ),
        client=http_client(
            timeout=settings.push_timeout_seconds,
            http2=True,
            ca_file=settings.push_ca_file,
            # APNs speaks only HTTP/2; over http (a local receiver) it must be h2c.
            h2c=settings.apns_base_url.startswith("http://"),
        ),
        alert=settings.alert_style(),
    )


def build_webhook(settings: NotificationSettings) -> WebhookSender:
    return WebhookSender(client=http_client(timeout=settings.webhook_timeout_seconds))


BUILDERS: Mapping[str, Callable[[NotificationSettings], Sender]] = {
    "fcm": build_fcm,
    "apns": build_apns,
    "webhook": build_webhook,
}


def build_senders(settings: NotificationSettings) -> dict[str, Sender]:
    """`{platform: sender}` for every device platform; logs one line per provider that is off."""
    fallback: Sender | None = LogSender() if "log" in settings.push_providers else None
    senders: dict[str, Sender] = {}
    for platform in DEVICE_PLATFORMS:
        reason = settings.disabled_reason(platform)
        if reason is None:
            senders[platform] = BUILDERS[platform](settings)
            log.info("push provider %s enabled", platform, extra={"provider": platform})
        elif fallback is not None:
            senders[platform] = fallback
            log.warning(
                "push provider %s disabled (%s): its pushes are written to the log instead",
                platform,
                reason,
                extra={"provider": platform},
            )
        else:
            senders[platform] = DisabledSender(platform, reason)
            log.warning(
                "push provider %s disabled (%s): its devices get no push",
                platform,
                reason,
                extra={"provider": platform},
            )
    return senders


def close_senders(senders: Mapping[str, Sender]) -> None:
    """Close each sender's connections once (the log fallback may stand for several platforms)."""
    for sender in {id(s): s for s in senders.values()}.values():
        sender.close()
