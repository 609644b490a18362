"""Reading request bodies: JSON objects only, validated by a pydantic model.

A wrong content type, malformed JSON or a body that is not an object are the client's
mistake (400 `validation_error`); pydantic's errors are rendered by the error handler.

Every hostile body ends as that 400 too, never as a 500 or a long CPU burn: nesting deeper
than MAX_NESTING_DEPTH (found by a linear scan before the recursive parser sees it), integers
outside 64 bits (Python refuses more than 4,300 digits anyway), floats that overflow to
infinity and the `NaN`/`Infinity` constants Python's json accepts but JSON does not, a body
that is not UTF-8 (JSON exchanged between systems must be UTF-8, without a byte order mark:
RFC 8259 section 8.1) or is labelled with another charset, and an object with the same key
twice (which one wins is the parser's guess, not the client's intent).
"""

from __future__ import annotations

import json
import math
import re
from typing import Any, NoReturn, TypeVar

from flask import current_app, request
from pydantic import BaseModel, ConfigDict, field_validator

from services.common.errors import PayloadTooLarge, ValidationError

Model = TypeVar("Model", bound=BaseModel)

# No request of the contract nests more than a few levels; 64 is far above that and far
# below the JSON parser's recursion limit (a 64 KiB body can nest 32,768 levels).
MAX_NESTING_DEPTH = 64
# Integers a client may send: what a PostgreSQL bigint (and most clients) can hold.
MIN_INTEGER, MAX_INTEGER = -(2**63), 2**63 - 1
# Digits of the largest of them; a longer literal is refused before int() reads it.
MAX_INTEGER_DIGITS = len(str(MAX_INTEGER))
ACCEPTED_CHARSETS = frozenset({"utf-8", "utf8"})

# What the nesting scan stops at: a whole string (its brackets do not count), a bracket, or
# a quote that opens a string never closed (the body is invalid then; the scan ends there,
# so a body of unclosed strings costs one pass, not one per quote).
_NESTING_TOKENS = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]|"', re.DOTALL)


class RequestModel(BaseModel):
    """Base of every request body: unknown fields are refused (a typo is not a no-op), types
    are not coerced, and strings must be storable: PostgreSQL text refuses NUL, and a lone
    UTF-16 surrogate (valid in JSON escapes) cannot be encoded; both would otherwise end
    as a 500 deep in the store."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    @field_validator("*", mode="after")
    @classmethod
    def _storable_text(cls, value: Any) -> Any:
        if isinstance(value, str):
            check_storable(value)
        return value


def check_storable(value: str) -> str:
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("must be valid Unicode text") from None
    return value


def nested_deeper_than(text: str, limit: int) -> bool:
    """True when arrays and objects in `text` nest more than `limit` levels (brackets inside
    strings do not count). Linear in the text, without recursion."""
    if text.count("[") + text.count("{") <= limit:
        return False  # the common case: too few brackets to nest that deep
    depth = 0
    for token in _NESTING_TOKENS.finditer(text):
        char = text[token.start()]
        if char in "[{":
            depth += 1
            if depth > limit:
                return True
        elif char in "]}":
            depth -= 1
        elif token.end() - token.start() == 1:
            break  # an unterminated string: the parser refuses the body at that point anyway
    return False


def _refuse(message: str) -> NoReturn:
    raise ValidationError(message)


def _parse_int(literal: str) -> int:
    if len(literal.lstrip("-")) > MAX_INTEGER_DIGITS:
        _refuse("request body has an integer outside the 64-bit range")
    value = int(literal)
    if not MIN_INTEGER <= value <= MAX_INTEGER:
        _refuse("request body has an integer outside the 64-bit range")
    return value


def _parse_float(literal: str) -> float:
    value = float(literal)
    if not math.isfinite(value):
        _refuse("request body has a number too large to represent")
    return value


def _parse_constant(name: str) -> NoReturn:
    # Python's json reads NaN, Infinity and -Infinity; JSON has no such values.
    _refuse(f"request body is not valid JSON ({name} is not a JSON value)")


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    data = dict(pairs)
    if len(data) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                _refuse(f"request body has the key {key[:40]!r} more than once")
            seen.add(key)
    return data


def request_bytes() -> bytes:
    """The body, read once (cached) and never past the cap: PayloadTooLarge (413) above it.

    A Content-Length over the cap was refused before any view ran (services.common.app).
    A body without one (chunked, straight to a service) is cut by werkzeug at the cap and
    handed over as if it ended there; when the cap is reached, one more byte is read from
    the server's stream to tell a body of exactly 64 KiB from a longer one (as the gateway's
    request_body() does)."""
    body = request.get_data(cache=True)
    limit = current_app.config.get("MAX_CONTENT_LENGTH")
    if (
        request.content_length is None
        and limit is not None
        and len(body) >= limit
        and request.environ["wsgi.input"].read(1)
    ):
        raise PayloadTooLarge(f"request body larger than {limit // 1024} KiB")
    return body


def _check_content_type() -> None:
    if not request.is_json:
        raise ValidationError("Content-Type must be application/json")
    charset = request.mimetype_params.get("charset")
    if charset is not None and charset.strip().lower() not in ACCEPTED_CHARSETS:
        raise ValidationError("Content-Type charset must be utf-8 (JSON is UTF-8)")


def _decode(body: bytes) -> str:
    if not body:
        raise ValidationError("request body is empty; a JSON object is required")
    try:
        text = body.decode("utf-8")  # strict: also refuses UTF-8-encoded surrogates
    except UnicodeDecodeError:
        raise ValidationError("request body is not valid UTF-8 (JSON must be UTF-8)") from None
    if text.startswith("\ufeff"):
        raise ValidationError("request body starts with a byte order mark; send UTF-8 without one")
    return text


def json_object() -> dict[str, Any]:
    """The request body as a dict, or ValidationError (413 propagates from the body cap)."""
    _check_content_type()
    text = _decode(request_bytes())
    if nested_deeper_than(text, MAX_NESTING_DEPTH):
        raise ValidationError(f"request body is nested too deeply (at most {MAX_NESTING_DEPTH} levels)")
    try:
        data = json.loads(
            text,
            parse_int=_parse_int,
            parse_float=_parse_float,
            parse_constant=_parse_constant,
            object_pairs_hook=_unique_keys,
        )
    except ValueError:  # JSONDecodeError, and int()'s own refusals
        raise ValidationError("request body is not valid JSON") from None
    except RecursionError:
        # Kept as a second line behind the scan: a recursion error is never the client's 500.
        raise ValidationError("request body is nested too deeply") from None
    if not isinstance(data, dict):
        raise ValidationError("request body must be a JSON object")
    return data


def parse_body(model: type[Model], context: dict[str, Any] | None = None) -> Model:
    return model.model_validate(json_object(), context=context)
