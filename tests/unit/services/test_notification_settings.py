"""NotificationSettings: safe defaults, named errors, and providers disabled with one log line."""

# Tokens here are made up.
# ruff: noqa: S106

from __future__ import annotations

import json
import logging

import pytest
from test_notification_helpers import (
    apns_env,
    notification_env,
    notification_settings,
    rsa_key_pem,
    service_account,
)

from services.common.config import SettingsError
from services.notification.base import DisabledSender
from services.notification.fcm import FcmSender
from services.notification.log_sender import LogSender
from services.notification.providers import build_senders, close_senders
from services.notification.settings import NotificationSettings
from services.notification.webhook import WebhookSender


def test_defaults_are_private_and_safe():
    settings = notification_settings()
    assert settings.service_name == "notification"
    assert settings.push_providers == ("fcm", "apns", "webhook")
    assert settings.push_privacy_ids_only is True
    assert (
        settings.push_max_attempts,
        settings.push_retry_base_seconds,
        settings.push_retry_max_seconds,
    ) == (
        4,
        0.5,
        8.0,
    )
    assert settings.fcm_base_url == "https://fcm.googleapis.com"
    assert settings.apns_base_url == "https://api.push.apple.com"
    assert settings.notifications_queue == "notifications.send"
    assert settings.disabled_reason("fcm") is not None
    assert settings.disabled_reason("apns") is not None
    assert settings.disabled_reason("webhook") is None


def test_lists_and_booleans_are_parsed_from_text():
    settings = notification_settings(
        WHATSAPP_PUSH_PROVIDERS=" Webhook, log ,webhook", WHATSAPP_PUSH_PRIVACY_IDS_ONLY="false"
    )
    assert settings.push_providers == ("webhook", "log")
    assert settings.push_privacy_ids_only is False


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("WHATSAPP_PUSH_PROVIDERS", "fcm,pigeon"),
        ("WHATSAPP_PUSH_PRIVACY_IDS_ONLY", "perhaps"),
        ("WHATSAPP_PUSH_MAX_ATTEMPTS", "0"),
        ("WHATSAPP_PUSH_RETRY_BASE_SECONDS", "-1"),
        ("WHATSAPP_PUSH_TIMEOUT_SECONDS", "600"),
        ("WHATSAPP_FCM_BASE_URL", "ftp://fcm.example.com"),
        ("WHATSAPP_APNS_BASE_URL", "api.push.apple.com"),
        ("WHATSAPP_FCM_CREDENTIALS_JSON", "{not json"),
        ("WHATSAPP_FCM_CREDENTIALS_JSON", '{"type": "authorized_user"}'),
        ("WHATSAPP_FCM_PROJECT_ID", "Not A Project"),
        ("WHATSAPP_APNS_TEAM_ID", "short"),
        ("WHATSAPP_RABBITMQ_URL", "http://rabbit:5672"),
        ("WHATSAPP_PUSH_CA_FILE", "/nonexistent/ca.pem"),
    ],
)
def test_malformed_values_are_named_and_not_echoed(variable, value):
    with pytest.raises(SettingsError) as raised:
        NotificationSettings.from_env(notification_env(**{variable: value}))
    message = str(raised.value)
    assert message.startswith(f"{variable} is malformed"), message
    assert value not in message


def test_a_non_p256_apns_key_is_refused():
    with pytest.raises(SettingsError, match="WHATSAPP_APNS_PRIVATE_KEY is malformed: not a P-256 EC key"):
        notification_settings(**apns_env("https://apns.example.com", WHATSAPP_APNS_PRIVATE_KEY=rsa_key_pem()))


def test_a_service_account_with_a_non_rsa_key_is_refused():
    account = json.loads(service_account("https://oauth2.example.com/token"))
    account["private_key"] = "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"
    with pytest.raises(SettingsError, match="WHATSAPP_FCM_CREDENTIALS_JSON is malformed"):
        notification_settings(WHATSAPP_FCM_CREDENTIALS_JSON=json.dumps(account))


def test_half_an_apns_configuration_is_an_error_naming_what_is_missing():
    env = apns_env("https://apns.example.com")
    del env["WHATSAPP_APNS_TOPIC"], env["WHATSAPP_APNS_KEY_ID"]
    with pytest.raises(SettingsError, match="WHATSAPP_APNS_KEY_ID, WHATSAPP_APNS_TOPIC missing"):
        notification_settings(**env)


def test_retry_max_below_base_is_refused():
    with pytest.raises(SettingsError, match="WHATSAPP_PUSH_RETRY_MAX_SECONDS must not be below"):
        notification_settings(WHATSAPP_PUSH_RETRY_BASE_SECONDS="5", WHATSAPP_PUSH_RETRY_MAX_SECONDS="1")


def test_the_fcm_project_comes_from_the_key_file_unless_given():
    key = service_account("https://oauth2.example.com/token", project_id="from-key")
    assert notification_settings(WHATSAPP_FCM_CREDENTIALS_JSON=key).fcm_project() == "from-key"
    explicit = notification_settings(WHATSAPP_FCM_CREDENTIALS_JSON=key, WHATSAPP_FCM_PROJECT_ID="explicit")
    assert explicit.fcm_project() == "explicit"


def test_a_static_token_without_a_project_leaves_fcm_disabled():
    settings = notification_settings(WHATSAPP_FCM_ACCESS_TOKEN="t")
    assert settings.disabled_reason("fcm") == "no project id (WHATSAPP_FCM_PROJECT_ID)"


def test_providers_without_credentials_are_disabled_with_one_log_line_each(caplog):
    caplog.set_level(logging.INFO, logger="services.notification")
    senders = build_senders(notification_settings())
    assert isinstance(senders["fcm"], DisabledSender)
    assert isinstance(senders["apns"], DisabledSender)
    assert isinstance(senders["webhook"], WebhookSender)
    lines = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(lines) == 2
    assert lines[0].startswith("push provider fcm disabled (no credentials (WHATSAPP_FCM_CREDENTIALS_JSON or")
    assert lines[1].startswith("push provider apns disabled (no credentials (WHATSAPP_APNS_TEAM_ID")
    close_senders(senders)


def test_the_log_provider_stands_in_for_disabled_ones(caplog):
    caplog.set_level(logging.INFO, logger="services.notification")
    senders = build_senders(notification_settings(WHATSAPP_PUSH_PROVIDERS="log"))
    assert all(isinstance(s, LogSender) for s in senders.values())
    assert sum("written to the log instead" in r.getMessage() for r in caplog.records) == 3
    close_senders(senders)


def test_an_fcm_static_token_enables_fcm():
    senders = build_senders(
        notification_settings(WHATSAPP_FCM_ACCESS_TOKEN="t", WHATSAPP_FCM_PROJECT_ID="whatsapp-test")
    )
    assert isinstance(senders["fcm"], FcmSender)
    assert senders["fcm"].url == "https://fcm.googleapis.com/v1/projects/whatsapp-test/messages:send"
    close_senders(senders)


def test_credentials_may_come_from_files(tmp_path):
    key_file = tmp_path / "AuthKey.p8"
    env = apns_env("https://apns.example.com")
    key_file.write_text(env.pop("WHATSAPP_APNS_PRIVATE_KEY"))
    settings = notification_settings(**env, WHATSAPP_APNS_PRIVATE_KEY_FILE=str(key_file))
    assert settings.disabled_reason("apns") is None
