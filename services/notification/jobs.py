"""The notification job message_processor queues, and its validation.

A job that does not validate can never succeed, however often the broker redelivers it,
so `parse_job` raises `InvalidJob`: the consumer dead-letters (rejects without requeue)
such a job at once instead of burning the queue's delivery limit on it.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, Literal
from uuid import UUID

import pydantic
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator

from services.common.errors import describe_validation_error
from services.common.request_id import SANE_REQUEST_ID
from services.common.times import rfc3339

if TYPE_CHECKING:
    from services.notification.base import Device

# Ids are opaque strings in the contract; bounded so a broken producer cannot make us
# send megabytes to every device.
Id = Field(min_length=1, max_length=128)


class InvalidJob(ValueError):
    """The job is malformed (not JSON, wrong shape): dead-letter it, never requeue it."""


class PushJob(BaseModel):
    """`{"type": "message", "user_id", "device_ids", "conversation_id", "message_id",
    "sender_id", "sent_at", "body", "media_type", "request_id"}`, as message_processor
    publishes it."""

    # Fields a newer producer adds are ignored, so producers can be upgraded first.
    model_config = ConfigDict(frozen=True, extra="ignore")

    type: Literal["message"]
    # accounts.users.id: a uuid, checked here so a bad one fails validation, not the SQL.
    user_id: UUID
    # The push targets whose session had no open socket when the message was fanned out;
    # None (a job from before sessions owned targets): every target of the user.
    device_ids: tuple[UUID, ...] | None = Field(default=None, max_length=64)
    conversation_id: str = Id
    message_id: str = Id
    sender_id: str = Id
    sent_at: AwareDatetime
    # The message text; None or empty when there is none to show (erased, ids only).
    body: str | None = Field(default=None, max_length=4096)
    # A message's file: its type only (`image/jpeg`...), never its bytes.
    media_type: str | None = Field(default=None, max_length=64, pattern=r"^[a-z]+/[a-z0-9.+-]+$")
    request_id: str | None = None

    @field_validator("request_id", mode="before")
    @classmethod
    def _sane_request_id(cls, value: object) -> object:
        # A bad request id loses log correlation only; it must not cost the user the push,
        # nor reach a webhook's headers.
        if isinstance(value, str) and SANE_REQUEST_ID.fullmatch(value):
            return value
        return None

    @field_validator("body")
    @classmethod
    def _empty_is_none(cls, value: str | None) -> str | None:
        return value or None

    def sent_at_text(self) -> str:
        """`sent_at` as the contract writes times: RFC 3339 in UTC with milliseconds."""
        text = rfc3339(self.sent_at)
        assert text is not None  # sent_at is required
        return text

    @property
    def user_id_text(self) -> str:
        return str(self.user_id)


def parse_job(raw: bytes | str | dict[str, Any] | PushJob) -> PushJob:
    """A validated job from the queue message's body (JSON) or an already decoded dict."""
    if isinstance(raw, PushJob):
        return raw
    if isinstance(raw, bytes | str):
        try:
            raw = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            raise InvalidJob(f"not JSON: {exc}") from None
    if not isinstance(raw, dict):
        raise InvalidJob(f"not a JSON object but {type(raw).__name__}")
    try:
        return PushJob.model_validate(raw)
    except pydantic.ValidationError as exc:
        raise InvalidJob(describe_validation_error(exc)) from None


def for_job(job: PushJob, devices: list[Device]) -> list[Device]:
    """The user's devices this job is for: those it names (their sessions had no open
    socket), or all of them for a job that names none."""
    if job.device_ids is None:
        return devices
    named = {str(d) for d in job.device_ids}
    return [d for d in devices if d.id in named]
