"""The WebSocket opening handshake of `GET /ws`, checked before anything else looks at it.

simple_websocket hands the request's headers to wsproto, which raises on a malformed
handshake (no Sec-WebSocket-Key, a Host that is not a valid IDNA name, a non-ASCII
Connection token, a permessage-deflate offer with a non-numeric window size...), and that
ended as a 500. `check_upgrade` refuses such an upgrade first, with 400 `validation_error`
in the contract's shape, following RFC 6455 section 4.2.1: a GET of HTTP/1.1 or later with
a Host, `Upgrade: websocket`, a Connection naming `Upgrade`, a Sec-WebSocket-Key that is
the base64 of 16 bytes and Sec-WebSocket-Version 13. The RFC answers a wrong version with
426; the contract has 400 for every malformed request, so it is 400 here, with the
`Sec-WebSocket-Version: 13` header the RFC asks for. A GET /ws that is no upgrade at all
is refused the same way. Whatever wsproto still refuses after this check is rendered as 400
by services.common.errors.
"""

from __future__ import annotations

import base64
import binascii
import re

from flask import request

from services.common.errors import ValidationError

WEBSOCKET_VERSION = "13"
KEY_BYTES = 16
# Headers wsproto reads or decodes as ASCII: printable ASCII only (tabs allowed).
CHECKED_HEADERS = (
    "Host",
    "Upgrade",
    "Connection",
    "Sec-WebSocket-Key",
    "Sec-WebSocket-Version",
    "Sec-WebSocket-Protocol",
    "Sec-WebSocket-Extensions",
)
PRINTABLE_ASCII = re.compile(r"[\t\x20-\x7e]*")
# permessage-deflate's window sizes are read with int(); RFC 7692: 1*DIGIT (8..15).
WINDOW_BITS = re.compile(r"(client|server)_max_window_bits\s*=\s*(?P<value>.*)", re.DOTALL)


def refuse(message: str, headers: dict[str, str] | None = None) -> ValidationError:
    return ValidationError(f"invalid WebSocket upgrade: {message}", headers=headers)


def comma_tokens(value: str) -> list[str]:
    return [token.strip().lower() for token in value.split(",")]


def check_host(host: str) -> None:
    if not host.strip():
        raise refuse("the Host header is required")
    try:
        host.encode("ascii").decode("idna")  # what wsproto does with it
    except UnicodeError:
        raise refuse("the Host header is not a valid host name") from None


def check_key(key: str | None) -> None:
    """Sec-WebSocket-Key: a base64-encoded 16-byte value (24 characters)."""
    if not key:
        raise refuse("the Sec-WebSocket-Key header is required")
    try:
        nonce = base64.b64decode(key.strip(), validate=True)
    except (binascii.Error, ValueError):
        nonce = b""
    if len(nonce) != KEY_BYTES:
        raise refuse("Sec-WebSocket-Key must be the base64 encoding of 16 bytes")


def check_extensions(offers: str) -> None:
    """A permessage-deflate offer wsproto would fail to read (int() of its window size)."""
    for offer in offers.split(","):
        for parameter in offer.split(";")[1:]:
            match = WINDOW_BITS.fullmatch(parameter.strip())
            if match and not match["value"].strip().isdigit():
                raise refuse("a permessage-deflate window size must be a number")


def check_upgrade() -> None:
    """400 `validation_error` for a request to /ws that is not a valid WebSocket upgrade."""
    # ws.py imports this module to register the hook; the path has its one home there.
    from services.chat.ws import WS_PATH  # noqa: PLC0415

    if request.path != WS_PATH:
        return
    headers = request.headers
    if request.method != "GET":
        raise refuse("the method must be GET")
    if request.environ.get("SERVER_PROTOCOL", "HTTP/1.1") in ("HTTP/0.9", "HTTP/1.0"):
        raise refuse("HTTP/1.1 or later is required")
    for name in CHECKED_HEADERS:
        value = headers.get(name)
        if value is not None and not PRINTABLE_ASCII.fullmatch(value):
            raise refuse(f"the {name} header must be printable ASCII")
    if comma_tokens(headers.get("Upgrade", "")) != ["websocket"]:
        raise refuse("the Upgrade header must be websocket")
    if "upgrade" not in comma_tokens(headers.get("Connection", "")):
        raise refuse("the Connection header must include Upgrade")
    if headers.get("Sec-WebSocket-Version", "").strip() != WEBSOCKET_VERSION:
        raise refuse(
            f"Sec-WebSocket-Version must be {WEBSOCKET_VERSION}",
            {"Sec-WebSocket-Version": WEBSOCKET_VERSION},
        )
    check_key(headers.get("Sec-WebSocket-Key"))
    check_host(headers.get("Host", ""))
    check_extensions(headers.get("Sec-WebSocket-Extensions", ""))
