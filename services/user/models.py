"""Request bodies of the user service, with the contract's limits.

Phone numbers are E.164 (`+` and 8-15 digits), passwords 8..128 characters, display_name
1..64, about 0..140, last_seen_visibility one of everyone, contacts, nobody. Webhook device
tokens are URLs whose host must be on the deployment's allow-list (passed as validation
context), so the service cannot be aimed at internal addresses.
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Annotated, Any, Literal, Self
from urllib.parse import urlsplit

from pydantic import AfterValidator, Field, ValidationInfo, model_validator

from services.common.bodies import RequestModel

E164 = re.compile(r"\+[0-9]{8,15}")
MAX_URL_LENGTH = 2048


def check_phone(value: str) -> str:
    if not E164.fullmatch(value):
        raise ValueError("must be an E.164 number: '+' then 8 to 15 digits")
    return value


def check_not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be blank")
    return value


def http_url_host(value: str) -> str:
    """The lower-case host of an absolute http(s) URL without credentials, or ValueError."""
    if any(c.isspace() or ord(c) < 0x20 or c == "\\" for c in value):
        raise ValueError("must be a URL without spaces or backslashes")
    try:
        parts = urlsplit(value)
        _ = parts.port  # parsing the port raises ValueError on garbage such as :99999
    except ValueError:
        raise ValueError("must be a valid http(s) URL") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an http(s) URL with a host")
    if parts.username is not None or parts.password is not None:
        raise ValueError("must not carry credentials")
    return parts.hostname.rstrip(".")


def check_http_url(value: str) -> str:
    http_url_host(value)
    return value


def host_allowed(host: str, allowed_hosts: tuple[str, ...] | list[str]) -> bool:
    """Exact match, or `*.example.com` for any subdomain of example.com (not itself)."""
    for entry in allowed_hosts:
        if entry.startswith("*."):
            if host.endswith(entry[1:]) and len(host) > len(entry) - 1:
                return True
        elif host == entry:
            return True
    return False


Phone = Annotated[str, AfterValidator(check_phone)]
Password = Annotated[str, Field(min_length=8, max_length=128)]
DisplayName = Annotated[str, Field(min_length=1, max_length=64), AfterValidator(check_not_blank)]
About = Annotated[str, Field(max_length=140)]
DeviceName = Annotated[str, Field(min_length=1, max_length=64), AfterValidator(check_not_blank)]
AvatarUrl = Annotated[str, Field(max_length=MAX_URL_LENGTH), AfterValidator(check_http_url)]
Platform = Literal["fcm", "apns", "webhook"]
# Who sees a user's online state and last seen (GET /users/{id}/presence, presence frames):
# anyone who keeps them as a contact, only those the user keeps as contacts, or no one.
LastSeenVisibility = Literal["everyone", "contacts", "nobody"]


class RegisterRequest(RequestModel):
    phone: Phone
    password: Password
    display_name: DisplayName
    device_name: DeviceName | None = None


class LoginRequest(RequestModel):
    # Looser than at registration on purpose: a malformed phone is just a wrong phone,
    # answered with the same 401 as any other.
    phone: Annotated[str, Field(min_length=1, max_length=32)]
    password: Annotated[str, Field(min_length=1, max_length=128)]
    device_name: DeviceName | None = None


class DeleteAccountRequest(RequestModel):
    """`DELETE /users/me`: the account's password, asked again."""

    password: Annotated[str, Field(min_length=1, max_length=128)]


class RefreshTokenRequest(RequestModel):
    refresh_token: Annotated[str, Field(min_length=1, max_length=256)]


class ProfileUpdate(RequestModel):
    display_name: DisplayName | None = None
    about: About | None = None
    # null clears the avatar; display_name, about and last_seen_visibility cannot be null.
    avatar_url: AvatarUrl | None = None
    last_seen_visibility: LastSeenVisibility | None = None

    @model_validator(mode="after")
    def _no_null_text(self) -> Self:
        for name in ("display_name", "about", "last_seen_visibility"):
            if name in self.model_fields_set and getattr(self, name) is None:
                raise ValueError(f"{name}: must not be null")
        return self


class UserReference(RequestModel):
    # Any string: an id that is not a UUID names no user, so it is a 404, not a 400.
    user_id: Annotated[str, Field(min_length=1, max_length=64)]


class DeviceRegistration(RequestModel):
    platform: Platform
    token: Annotated[str, Field(min_length=1, max_length=4096)]

    @model_validator(mode="after")
    def _webhook_host_allowed(self, info: ValidationInfo) -> Self:
        if self.platform != "webhook":
            return self
        if len(self.token) > MAX_URL_LENGTH:
            raise ValueError(f"token: a webhook URL has at most {MAX_URL_LENGTH} characters")
        try:
            host = http_url_host(self.token)
        except ValueError as exc:
            raise ValueError(f"token: {exc}") from None
        context: dict[str, Any] = info.context or {}
        if not host_allowed(host, context.get("webhook_allowed_hosts", ())):
            raise ValueError(f"token: webhook host {host!r} is not on this deployment's allow-list")
        return self


# ---- end-to-end encryption keys ----------------------------------------------------------

BASE64 = re.compile(r"[A-Za-z0-9+/]+={0,2}")
MAX_KEY_ID = 2**31 - 1


def check_key(value: str) -> str:
    """A public key or signature: standard base64 (padded), 32..256 bytes once decoded."""
    if not BASE64.fullmatch(value) or len(value) % 4:
        raise ValueError("must be standard base64 (A-Z a-z 0-9 + /, padded with =)")
    try:
        decoded = base64.b64decode(value, validate=True)
    except binascii.Error:
        raise ValueError("must be standard base64") from None
    if not 32 <= len(decoded) <= 256:
        raise ValueError("must decode to 32..256 bytes")
    return value


Key = Annotated[str, Field(min_length=44, max_length=344), AfterValidator(check_key)]
KeyId = Annotated[int, Field(ge=0, le=MAX_KEY_ID, strict=True)]


class SignedPrekey(RequestModel):
    key_id: KeyId
    public_key: Key
    signature: Key


class OneTimePrekey(RequestModel):
    key_id: KeyId
    public_key: Key


class KeysUpload(RequestModel):
    identity_key: Key | None = None
    signed_prekey: SignedPrekey | None = None
    one_time_prekeys: Annotated[list[OneTimePrekey], Field(max_length=100)] = []
