"""Request bodies and WebSocket frames of the chat service, with the contract's limits."""

from __future__ import annotations

import uuid
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, model_validator

from services.common.bodies import RequestModel

MAX_BODY_CHARS = 4096
# An end-to-end encrypted body is opaque: any text of 1..65536 characters (the contract).
MAX_ENCRYPTED_BODY_CHARS = 65_536
MAX_TTL_SECONDS = 7 * 86_400


def check_uuid(value: str) -> str:
    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise ValueError("must be a UUID") from None


def check_not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be blank")
    return value


Uuid = Annotated[str, AfterValidator(check_uuid)]
Body = Annotated[str, Field(min_length=1, max_length=MAX_BODY_CHARS), AfterValidator(check_not_blank)]
# A body that may be encrypted: the plain rules (4096, not blank) are checked by the model.
AnyBody = Annotated[str, Field(min_length=1, max_length=MAX_ENCRYPTED_BODY_CHARS)]


class _MaybeEncrypted(RequestModel):
    """`body` with `encrypted`: opaque when true, the plain message rules otherwise. A
    message with `media_id` may have an empty body (no caption)."""

    body: AnyBody | Literal[""] = ""
    encrypted: bool = False
    media_id: Uuid | None = None

    @model_validator(mode="after")
    def _plain_rules(self) -> _MaybeEncrypted:
        if self.body == "":
            if self.media_id is None:
                raise ValueError("body: must not be empty unless the message carries media_id")
        elif not self.encrypted:
            if len(self.body) > MAX_BODY_CHARS:
                raise ValueError(f"body must have at most {MAX_BODY_CHARS} characters unless encrypted")
            check_not_blank(self.body)
        return self


ClientMsgId = Annotated[str, Field(min_length=1, max_length=128)]
MessageId = Annotated[str, Field(min_length=1, max_length=64)]
TtlSeconds = Annotated[int, Field(ge=1, le=MAX_TTL_SECONDS)]
Seq = Annotated[int, Field(ge=0, le=2**62)]


class DirectConversationRequest(RequestModel):
    type: Literal["direct"]
    member_id: Uuid


class GroupConversationRequest(RequestModel):
    type: Literal["group"]
    title: Annotated[str, Field(min_length=1, max_length=128), AfterValidator(check_not_blank)]
    member_ids: Annotated[list[Uuid], Field(max_length=256)]


class MemberRequest(RequestModel):
    user_id: Uuid


class SendMessageRequest(_MaybeEncrypted):
    client_msg_id: ClientMsgId
    ttl_seconds: TtlSeconds | None = None
    reply_to: MessageId | None = None


class EditRequest(RequestModel):
    """`PATCH /messages/{id}`: the new body, under the rules of the message's own kind
    (checked against the message: plain 1..4096 and not blank, encrypted 1..65536)."""

    body: AnyBody


class ReactionRequest(RequestModel):
    emoji: Annotated[str, Field(min_length=1, max_length=16), AfterValidator(check_not_blank)]


class ReadRequest(RequestModel):
    up_to_seq: Seq


# ---- WebSocket frames (client to server) -----------------------------------------------------


class SendFrame(_MaybeEncrypted):
    type: Literal["message.send"]
    client_msg_id: ClientMsgId
    conversation_id: Uuid
    ttl_seconds: TtlSeconds | None = None
    reply_to: MessageId | None = None


class ReceiptFrame(RequestModel):
    type: Literal["receipt"]
    conversation_id: Uuid
    up_to_seq: Seq
    status: Literal["delivered", "read"]


class TypingFrame(RequestModel):
    type: Literal["typing"]
    conversation_id: Uuid
    state: Literal["start", "stop"]


class PingFrame(RequestModel):
    type: Literal["ping"]


class AuthFrame(RequestModel):
    """A fresh access token for this socket, sent before the one it opened with expires."""

    type: Literal["auth"]
    access_token: Annotated[str, Field(min_length=1, max_length=4096)]


FRAME_MODELS: dict[str, type[RequestModel]] = {
    "message.send": SendFrame,
    "receipt": ReceiptFrame,
    "typing": TypingFrame,
    "ping": PingFrame,
    "auth": AuthFrame,
}
