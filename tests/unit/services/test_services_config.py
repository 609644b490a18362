"""Settings come from WHATSAPP_* variables; a bad one stops start-up naming the variable."""

from __future__ import annotations

import pytest
from service_helpers import keypair, user_env

from services.common.auth import generate_dev_keypair
from services.common.config import SettingsError
from services.user.settings import UserSettings


def test_complete_environment_gives_typed_settings_with_defaults():
    settings = UserSettings.from_env(user_env())
    assert settings.service_name == "user"
    assert settings.bcrypt_cost == 4
    assert settings.access_token_ttl_seconds == 900
    assert settings.log_level == "INFO"
    assert settings.webhook_allowed_hosts == ("hooks.example.com", "*.push.example.org")


@pytest.mark.parametrize(
    "variable",
    ["WHATSAPP_POSTGRES_DSN", "WHATSAPP_REDIS_URL", "WHATSAPP_JWT_PUBLIC_KEY", "WHATSAPP_JWT_PRIVATE_KEY"],
)
def test_missing_variable_is_named(variable):
    env = user_env()
    del env[variable]
    with pytest.raises(SettingsError, match=rf"^{variable} is missing$"):
        UserSettings.from_env(env)


def test_empty_variable_counts_as_missing():
    with pytest.raises(SettingsError, match="WHATSAPP_POSTGRES_DSN is missing"):
        UserSettings.from_env(user_env(WHATSAPP_POSTGRES_DSN=""))


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("WHATSAPP_ACCESS_TOKEN_TTL_SECONDS", "fifteen minutes"),
        ("WHATSAPP_ACCESS_TOKEN_TTL_SECONDS", "5"),
        ("WHATSAPP_BCRYPT_COST", "40"),
        ("WHATSAPP_LOG_LEVEL", "chatty"),
        ("WHATSAPP_REDIS_URL", "http://redis:6379"),
        ("WHATSAPP_POSTGRES_DSN", "postgresql://host:notaport/db"),
        ("WHATSAPP_POSTGRES_DSN", "mysql://user@host/db"),
        ("WHATSAPP_LOGSTASH_PORT", "70000"),
        ("WHATSAPP_JWT_PUBLIC_KEY", "not a key"),
        ("WHATSAPP_WEBHOOK_ALLOWED_HOSTS", "good.example.com, bad host"),
    ],
)
def test_malformed_variable_is_named_and_its_value_not_echoed(variable, value):
    with pytest.raises(SettingsError) as raised:
        UserSettings.from_env(user_env(**{variable: value}))
    message = str(raised.value)
    assert message.startswith(f"{variable} is malformed"), message
    if variable != "WHATSAPP_WEBHOOK_ALLOWED_HOSTS":  # that one names the bad host on purpose
        assert value not in message


def test_private_key_must_match_public_key():
    other_private, _ = generate_dev_keypair()
    with pytest.raises(
        SettingsError, match="WHATSAPP_JWT_PRIVATE_KEY does not match WHATSAPP_JWT_PUBLIC_KEY"
    ):
        UserSettings.from_env(user_env(WHATSAPP_JWT_PRIVATE_KEY=other_private))


def test_value_can_come_from_a_file(tmp_path):
    key_file = tmp_path / "public.pem"
    key_file.write_text(keypair()[1])
    env = user_env()
    del env["WHATSAPP_JWT_PUBLIC_KEY"]
    env["WHATSAPP_JWT_PUBLIC_KEY_FILE"] = str(key_file)
    assert UserSettings.from_env(env).jwt_public_key.strip() == keypair()[1].strip()


def test_unreadable_file_is_named(tmp_path):
    env = user_env()
    del env["WHATSAPP_JWT_PUBLIC_KEY"]
    env["WHATSAPP_JWT_PUBLIC_KEY_FILE"] = str(tmp_path / "absent.pem")
    with pytest.raises(SettingsError, match="WHATSAPP_JWT_PUBLIC_KEY_FILE"):
        UserSettings.from_env(env)


def test_pem_with_escaped_newlines_is_accepted():
    one_line = keypair()[1].strip().replace("\n", "\\n")
    settings = UserSettings.from_env(user_env(WHATSAPP_JWT_PUBLIC_KEY=one_line))
    assert settings.jwt_public_key.startswith("-----BEGIN PUBLIC KEY-----\n")


def test_settings_are_frozen():
    settings = UserSettings.from_env(user_env())
    with pytest.raises(ValueError, match="frozen"):
        settings.bcrypt_cost = 12
