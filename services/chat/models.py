"""Request bodies and WebSocket frames of the chat service, with the contract's limits."""

from __future__ import annotations

import uuid
from typing import Annotated, Literal

from pydantic import AfterValidator, Field

from services.common.bodies import RequestModel

MAX_BODY_CHARS = 4096
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
ClientMsgId = Annotated[str, Field(min_length=1, max_length=128)]
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


class SendMessageRequest(RequestModel):
    client_msg_id: ClientMsgId
    body: Body
    ttl_seconds: TtlSeconds | None = None


class ReadRequest(RequestModel):
    up_to_seq: Seq


# ---- WebSocket frames (client to server) -----------------------------------------------------


class SendFrame(RequestModel):
    type: Literal["message.send"]
    client_msg_id: ClientMsgId
    conversation_id: Uuid
    body: Body
    ttl_seconds: TtlSeconds | None = None


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
