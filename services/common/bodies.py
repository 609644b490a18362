"""Reading request bodies: JSON objects only, validated by a pydantic model.

A wrong content type, malformed JSON or a body that is not an object are the client's
mistake (400 `validation_error`); pydantic's errors are rendered by the error handler.
"""

from __future__ import annotations

from typing import Any, TypeVar

from flask import request
from pydantic import BaseModel, ConfigDict, field_validator

from services.common.errors import ValidationError

Model = TypeVar("Model", bound=BaseModel)


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


def json_object() -> dict[str, Any]:
    """The request body as a dict, or ValidationError (413 propagates from the body cap)."""
    if not request.is_json:
        raise ValidationError("Content-Type must be application/json")
    try:
        data = request.get_json(silent=True)
    except RecursionError:
        # `[[[[...` a few thousand deep fits in 64 KiB and exhausts the JSON parser's stack.
        raise ValidationError("request body is nested too deeply") from None
    if data is None:
        raise ValidationError("request body is not valid JSON")
    if not isinstance(data, dict):
        raise ValidationError("request body must be a JSON object")
    return data


def parse_body(model: type[Model], context: dict[str, Any] | None = None) -> Model:
    return model.model_validate(json_object(), context=context)
