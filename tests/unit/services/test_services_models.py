"""The request models enforce the contract's limits."""

from __future__ import annotations

import pydantic
import pytest

from services.common.errors import describe_validation_error
from services.user.models import (
    DeviceRegistration,
    LoginRequest,
    ProfileUpdate,
    RegisterRequest,
    UserReference,
    host_allowed,
)

ALLOWED = {"webhook_allowed_hosts": ("hooks.example.com", "*.push.example.org")}


def register(**overrides):
    body = {"phone": "+15550001", "password": "correct horse", "display_name": "Ada"}
    body.update(overrides)
    return RegisterRequest.model_validate(body)


def refused(model, body, context=None) -> str:
    with pytest.raises(pydantic.ValidationError) as raised:
        model.model_validate(body, context=context)
    return describe_validation_error(raised.value)


@pytest.mark.parametrize("phone", ["+15550001", "+123456789012345", "+4915123456789"])
def test_e164_phones_are_accepted(phone):
    assert register(phone=phone).phone == phone


@pytest.mark.parametrize(
    "phone",
    ["15550001", "+1555000", "+1234567890123456", "+1555-0001", "+1555 0001", "+١٢٣٤٥٦٧٨٩", "", "++15550001"],
)
def test_other_phones_are_refused(phone):
    message = refused(RegisterRequest, {"phone": phone, "password": "correct horse", "display_name": "Ada"})
    assert message.startswith("phone:"), message


def test_password_lengths():
    shortest, longest = "1" * 8, "p" * 128
    assert register(password=shortest).password == shortest
    assert register(password=longest).password == longest
    body = {"phone": "+15550001", "display_name": "Ada"}
    assert refused(RegisterRequest, {**body, "password": "1234567"}).startswith("password:")
    assert refused(RegisterRequest, {**body, "password": "p" * 129}).startswith("password:")


def test_display_name_lengths():
    assert register(display_name="A").display_name == "A"
    assert register(display_name="é" * 64).display_name == "é" * 64
    body = {"phone": "+15550001", "password": "correct horse"}
    for bad in ("", "x" * 65, "   "):
        assert refused(RegisterRequest, {**body, "display_name": bad}).startswith("display_name:")


def test_about_lengths():
    assert ProfileUpdate.model_validate({"about": ""}).about == ""
    assert ProfileUpdate.model_validate({"about": "a" * 140}).about == "a" * 140
    assert refused(ProfileUpdate, {"about": "a" * 141}).startswith("about:")


def test_profile_update_keeps_track_of_what_was_sent():
    update = ProfileUpdate.model_validate({"avatar_url": None})
    assert update.model_dump(include=update.model_fields_set) == {"avatar_url": None}
    assert "display_name: must not be null" in refused(ProfileUpdate, {"display_name": None})


@pytest.mark.parametrize("url", ["https://cdn.example.com/a.png", "http://example.com:8080/x?y=1"])
def test_avatar_url_accepts_http_urls(url):
    assert ProfileUpdate.model_validate({"avatar_url": url}).avatar_url == url


@pytest.mark.parametrize(
    "url",
    [
        "ftp://example.com/a.png",
        "javascript:alert(1)",
        "https://",
        "https://user:pw@example.com/",
        "not a url",
    ],
)
def test_avatar_url_refuses_the_rest(url):
    assert refused(ProfileUpdate, {"avatar_url": url}).startswith("avatar_url:")


@pytest.mark.parametrize("platform", ["fcm", "apns"])
def test_push_platforms_take_any_token(platform):
    device = DeviceRegistration.model_validate({"platform": platform, "token": "abc123"}, context=ALLOWED)
    assert device.platform == platform


def test_unknown_platform_is_refused():
    message = refused(DeviceRegistration, {"platform": "sms", "token": "x"}, ALLOWED)
    assert message.startswith("platform:")
    assert "webhook" in message


@pytest.mark.parametrize(
    "url",
    ["https://hooks.example.com/push", "http://HOOKS.example.com:8443/p", "https://a.push.example.org/x"],
)
def test_webhook_on_an_allowed_host_is_accepted(url):
    assert (
        DeviceRegistration.model_validate({"platform": "webhook", "token": url}, context=ALLOWED).token == url
    )


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data",
        "http://localhost:8081/api/v1/users",
        "https://push.example.org/x",  # *.push.example.org covers subdomains, not the domain
        "https://hooks.example.com.evil.net/",
        "https://evil.net/?https://hooks.example.com/",
        "https://hooks.example.com@evil.net/",
        "https://hooks.example.com\\@evil.net/",
        "ftp://hooks.example.com/",
        "hooks.example.com/push",
    ],
)
def test_webhook_elsewhere_is_refused(url):
    message = refused(DeviceRegistration, {"platform": "webhook", "token": url}, ALLOWED)
    assert "token" in message


def test_webhook_refused_when_no_allow_list_is_configured():
    body = {"platform": "webhook", "token": "https://hooks.example.com/push"}
    assert "allow-list" in refused(DeviceRegistration, body, {"webhook_allowed_hosts": ()})
    assert "allow-list" in refused(DeviceRegistration, body, None)


def test_host_allowed_matching():
    assert host_allowed("hooks.example.com", ["hooks.example.com"])
    assert host_allowed("a.b.example.org", ["*.example.org"])
    assert not host_allowed("example.org", ["*.example.org"])
    assert not host_allowed("badexample.org", ["*.example.org"])


def test_strings_that_postgres_cannot_store_are_refused():
    assert refused(LoginRequest, {"phone": "+15550001", "password": "a\x00b"}).startswith("password:")
    assert refused(LoginRequest, {"phone": "+15550001", "password": "a\ud800b"}).startswith("password:")


def test_types_are_not_coerced():
    assert refused(UserReference, {"user_id": 12345}).startswith("user_id:")
    assert refused(LoginRequest, {"phone": ["+15550001"], "password": "x"}).startswith("phone:")
