"""HTTP routes of the chat service, under /api/v1 (the gateway forwards paths unchanged).

Authenticate first (401), validate (400), then touch the stores. A conversation or message
the caller may not see is a 404, never a 403 that would reveal it exists.
"""

from __future__ import annotations

import base64
import binascii
from datetime import datetime
from typing import Any

from flask import Blueprint, Response, g, jsonify, request

from services.chat import history, store
from services.chat.context import chat_context
from services.chat.messages import message_json, send_message
from services.chat.models import (
    MAX_BODY_CHARS,
    DirectConversationRequest,
    EditRequest,
    GroupConversationRequest,
    MemberRequest,
    ReactionRequest,
    ReadRequest,
    SendMessageRequest,
    check_not_blank,
    check_uuid,
)
from services.chat.receipts import mark_and_announce
from services.common import media
from services.common.auth import require_user
from services.common.bodies import json_object, parse_body
from services.common.errors import Conflict, Forbidden, NotFound, ValidationError
from services.common.mongo import MESSAGES
from services.common.times import rfc3339, utcnow

API_PREFIX = "/api/v1"
DEFAULT_PAGE = 50
MAX_PAGE = 100
DEFAULT_CONVERSATIONS_PAGE = 100
MAX_CONVERSATIONS_PAGE = 200
GROUP_FULL = f"a group has at most {store.MAX_GROUP_MEMBERS} members"

conversations_bp = Blueprint("conversations", __name__, url_prefix=f"{API_PREFIX}/conversations")
messages_bp = Blueprint("messages", __name__, url_prefix=f"{API_PREFIX}/messages")
BLUEPRINTS = (conversations_bp, messages_bp)


def conversation_uuid(value: str, what: str = "conversation") -> str:
    try:
        return check_uuid(value)
    except ValueError:
        raise NotFound(f"no such {what}") from None


def conversation_json(row: dict[str, Any]) -> dict[str, Any]:
    body: dict[str, Any] = {"id": str(row["id"]), "type": row["type"]}
    if row["type"] == "group":
        body["title"] = row["title"]
    body["members"] = [{"user_id": str(m["user_id"]), "role": m["role"]} for m in row["members"]]
    body["created_at"] = rfc3339(row["created_at"])
    return body


def summary_json(row: dict[str, Any]) -> dict[str, Any]:
    body = conversation_json(row)
    last = None
    if row.get("lm_id") is not None:
        last = message_json(
            {
                "id": row["lm_id"],
                "conversation_id": row["id"],
                "seq": row["lm_seq"],
                "sender_id": row["lm_sender_id"],
                "client_msg_id": row["lm_client_msg_id"],
                "body": row["lm_body"],
                "created_at": row["lm_created_at"],
                "expires_at": row["lm_expires_at"],
            }
        )
    body["last_message"] = last
    body["unread_count"] = int(row["unread_count"])
    return body


def _visible_conversation(conversation_id: str, viewer: str) -> dict[str, Any]:
    with chat_context().db.connection() as conn:
        row = store.get_conversation(conn, conversation_uuid(conversation_id), viewer)
    if row is None:
        raise NotFound("no such conversation")
    return row


def _notify_members(conversation: dict[str, Any], frame: dict[str, Any]) -> None:
    ctx = chat_context()
    ctx.hub.forget_members(str(conversation["id"]))
    ctx.hub.publish_event([str(m["user_id"]) for m in conversation["members"]], frame)


# ---- conversations -------------------------------------------------------------------------


@conversations_bp.post("")
def create_conversation() -> tuple[Response, int]:
    creator = require_user()
    kind = json_object().get("type")  # the one body parser: hostile bodies are 400 here too
    if kind == "direct":
        direct = parse_body(DirectConversationRequest)
        if direct.member_id == creator:
            raise ValidationError("member_id: a direct conversation needs another user")
        wanted = [direct.member_id]
    elif kind == "group":
        group = parse_body(GroupConversationRequest)
        wanted = list(dict.fromkeys(m for m in group.member_ids if m != creator))
    else:
        parse_body(DirectConversationRequest)  # renders the body's own problems first
        raise ValidationError("type: must be 'direct' or 'group'")
    if kind == "group" and len(wanted) + 1 > store.MAX_GROUP_MEMBERS:
        raise Conflict(GROUP_FULL)
    ctx = chat_context()
    with ctx.db.transaction() as conn:
        missing = set(wanted) - store.existing_users(conn, wanted)
        if missing:
            raise NotFound("no such user: " + ", ".join(sorted(missing)))
        # Nobody is put in a conversation with someone they blocked.
        if store.blockers_among(conn, creator, wanted):
            raise Forbidden("a user you named has blocked you", code="blocked")
        if kind == "direct":
            conversation_id, created = store.create_direct(conn, creator, wanted[0])
        else:
            conversation_id, created = store.create_group(conn, creator, group.title, wanted), True
        row = store.get_conversation(conn, conversation_id, creator)
    body = conversation_json(row)
    if created:
        _notify_members(row, {"type": "conversation.new", "conversation": body})
    return jsonify(body), 201 if created else 200


def _cursor(row: dict[str, Any]) -> str:
    raw = f"{row['activity_at'].isoformat()}|{row['id']}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _parse_cursor(value: str) -> tuple[datetime, str]:
    """The (activity, id) a `before` cursor names; anything else is a 400."""
    try:
        raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)).decode()
        at, conversation_id = raw.split("|")
        parsed = datetime.fromisoformat(at)
        if parsed.tzinfo is None:
            raise ValueError(at)
        return parsed, check_uuid(conversation_id)
    except (ValueError, UnicodeDecodeError, binascii.Error):
        raise ValidationError("before: not a cursor this API gave out (next_before)") from None


@conversations_bp.get("")
def list_conversations() -> Response:
    viewer = require_user()
    limit = _int_arg("limit", DEFAULT_CONVERSATIONS_PAGE, 1, MAX_CONVERSATIONS_PAGE)
    raw_before = request.args.get("before")
    before = _parse_cursor(raw_before) if raw_before else None
    with chat_context().db.connection() as conn:
        rows = store.list_conversations(conn, viewer, limit=limit + 1, before=before)
    page = rows[:limit]
    next_before = _cursor(page[-1]) if len(rows) > limit else None
    return jsonify({"conversations": [summary_json(r) for r in page], "next_before": next_before})


@conversations_bp.get("/<conversation_id>")
def get_conversation(conversation_id: str) -> Response:
    viewer = require_user()
    return jsonify(conversation_json(_visible_conversation(conversation_id, viewer)))


@conversations_bp.post("/<conversation_id>/members")
def add_member(conversation_id: str) -> tuple[Response, int]:
    actor = require_user()
    conversation = _visible_conversation(conversation_id, actor)
    body = parse_body(MemberRequest)
    if conversation["type"] != "group":
        raise Forbidden("members of a direct conversation cannot change")
    if conversation["my_role"] != "admin":
        raise Forbidden("only group admins can add members")
    ctx = chat_context()
    with ctx.db.transaction() as conn:
        if not store.existing_users(conn, [body.user_id]):
            raise NotFound("no such user")
        if store.blockers_among(conn, actor, [body.user_id]):
            raise Forbidden("this user has blocked you", code="blocked")
        try:
            store.add_member(conn, conversation["id"], body.user_id)
        except store.GroupFull:
            raise Conflict(GROUP_FULL) from None
        row = store.get_conversation(conn, conversation["id"], actor)
    result = conversation_json(row)
    _notify_members(row, {"type": "conversation.updated", "conversation": result})
    return jsonify(result), 201


@conversations_bp.delete("/<conversation_id>/members/<user_id>")
def remove_member(conversation_id: str, user_id: str) -> Response:
    actor = require_user()
    conversation = _visible_conversation(conversation_id, actor)
    target = conversation_uuid(user_id, "member")
    if conversation["type"] != "group":
        raise Forbidden("members of a direct conversation cannot change")
    if target != actor and conversation["my_role"] != "admin":
        raise Forbidden("only group admins can remove other members")
    ctx = chat_context()
    with ctx.db.transaction() as conn:
        if not store.remove_member(conn, conversation["id"], target):
            raise NotFound("no such member")
        store.promote_oldest_if_no_admin(conn, conversation["id"])
    _notify_members(
        conversation,
        {"type": "member.removed", "conversation_id": str(conversation["id"]), "user_id": target},
    )
    return Response(status=204)


# ---- messages ------------------------------------------------------------------------------


def _int_arg(name: str, default: int | None, low: int, high: int) -> int | None:
    raw = request.args.get(name)
    if raw is None or raw == "":
        return default
    if not raw.isdigit() or not low <= int(raw) <= high:
        raise ValidationError(f"{name}: must be an integer from {low} to {high}")
    return int(raw)


@conversations_bp.get("/<conversation_id>/messages")
def list_messages(conversation_id: str) -> Response:
    viewer = require_user()
    before_seq = _int_arg("before_seq", None, 1, 2**62)
    limit = _int_arg("limit", DEFAULT_PAGE, 1, MAX_PAGE)
    conversation = _visible_conversation(conversation_id, viewer)
    floor = int(conversation["visible_after_seq"])  # what came before the viewer joined
    ctx = chat_context()
    docs = history.page_before(ctx.mongo, str(conversation["id"]), before_seq, limit, floor)
    with ctx.db.connection() as conn:
        reactions = store.reactions_of(conn, [str(d["_id"]) for d in docs])
    messages = [message_json(d) | {"reactions": reactions.get(str(d["_id"]), [])} for d in docs]
    next_before = messages[-1]["seq"] if len(messages) == limit and messages[-1]["seq"] > floor + 1 else None
    return jsonify({"messages": messages, "next_before_seq": next_before})


@conversations_bp.post("/<conversation_id>/messages")
def post_message(conversation_id: str) -> tuple[Response, int]:
    sender = require_user()
    conversation_id = conversation_uuid(conversation_id)
    body = parse_body(SendMessageRequest)
    message, created = send_message(
        chat_context(),
        sender=sender,
        conversation_id=conversation_id,
        client_msg_id=body.client_msg_id,
        body=body.body,
        ttl_seconds=body.ttl_seconds,
        encrypted=body.encrypted,
        reply_to=body.reply_to,
        media_id=body.media_id,
        request_id=g.get("request_id"),
    )
    return jsonify(message), 201 if created else 200


@conversations_bp.post("/<conversation_id>/read")
def mark_read(conversation_id: str) -> Response:
    reader = require_user()
    conversation_id = conversation_uuid(conversation_id)
    body = parse_body(ReadRequest)
    mark_and_announce(
        chat_context(),
        conversation_id=conversation_id,
        reader=reader,
        up_to_seq=body.up_to_seq,
        status="read",
        session_id=g.get("session_id"),
    )
    return Response(status=204)


@messages_bp.delete("/<message_id>")
def delete_message(message_id: str) -> Response:
    sender = require_user()
    message_id = _message_id(message_id)
    ctx = chat_context()
    with ctx.db.transaction() as conn:
        row = store.delete_message(conn, message_id, sender)
        if row is None:
            raise NotFound("no such message")
        # The stored copy loses its text before the row commits: if MongoDB fails, the
        # transaction rolls back, the answer is 503 and a retry finds the message as it was,
        # so no body is left behind in either store. (Not stored yet: message_processor
        # finds the row erased when it stores the message, and erases its copy then.)
        ctx.mongo[MESSAGES].update_one(
            {"_id": row["id"]}, {"$set": {"body": None, "deleted": True, "media": None}}
        )
        # Its file goes with it, unless another live message carries it too.
        forgotten = media.forget(conn, [row["media_id"]]) if row["media_id"] else []
    # The bytes after the commit (a crash in between leaves bytes without a row: swept).
    media.delete_files(ctx.mongo, forgotten)
    conversation_id = str(row["conversation_id"])
    ctx.hub.publish_event(
        ctx.hub.members(conversation_id),
        {"type": "message.deleted", "conversation_id": conversation_id, "message_id": row["id"]},
    )
    return Response(status=204)


def _message_id(message_id: str) -> str:
    if not 1 <= len(message_id) <= 64:
        raise NotFound("no such message")
    return message_id


@messages_bp.patch("/<message_id>")
def edit_message(message_id: str) -> Response:
    """The sender replaces the body within EDIT_WINDOW; members get `message.edited`."""
    editor = require_user()
    message_id = _message_id(message_id)
    body = parse_body(EditRequest)
    ctx = chat_context()
    with ctx.db.transaction() as conn:
        row = store.message_for(conn, message_id, editor, lock=True)
        if row is None:
            raise NotFound("no such message")
        if str(row["sender_id"]) != editor:
            raise Forbidden("only the sender can edit a message")
        if row["deleted_at"] is not None:
            raise Conflict("a deleted message cannot be edited")
        if utcnow() - row["created_at"] > store.EDIT_WINDOW:
            raise Conflict("a message can be edited within 15 minutes of sending only")
        if not row["encrypted"]:
            if len(body.body) > MAX_BODY_CHARS:
                raise ValidationError(f"body: must have at most {MAX_BODY_CHARS} characters unless encrypted")
            try:
                check_not_blank(body.body)
            except ValueError as exc:
                raise ValidationError(f"body: {exc}") from None
        edited = store.edit_message(conn, message_id, body.body)
        # As in a delete: the stored copy changes before the row commits (a MongoDB failure
        # rolls the edit back: 503, nothing changed). Not stored yet: message_processor sees
        # edited_at when it stores the message and writes the last body then.
        ctx.mongo[MESSAGES].update_one(
            {"_id": message_id}, {"$set": {"body": edited["body"], "edited_at": edited["edited_at"]}}
        )
    message = message_json(edited)
    conversation_id = message["conversation_id"]
    ctx.hub.publish_event(
        ctx.hub.seeing(conversation_id, message["seq"]), {"type": "message.edited", "message": message}
    )
    return jsonify(message)


def _react(message_id: str, emoji: str | None) -> Response:
    reactor = require_user()
    message_id = _message_id(message_id)
    ctx = chat_context()
    with ctx.db.transaction() as conn:
        row = store.message_for(conn, message_id, reactor)
        if row is None or row["deleted_at"] is not None:
            raise NotFound("no such message")
        conversation_id = str(row["conversation_id"])
        if row["conversation_type"] == "direct" and store.blockers_among(
            conn, reactor, [m for m in store.member_ids(conn, conversation_id) if m != reactor]
        ):
            raise Forbidden("you cannot react in this conversation", code="blocked")
        changed = store.set_reaction(conn, message_id, reactor, emoji)
    if changed:
        # Everyone who sees the message, the reactor's other sockets too; never those who
        # blocked the reactor (as with typing and receipts).
        blockers = ctx.hub.blockers(reactor)
        ctx.hub.publish_event(
            [m for m in ctx.hub.seeing(conversation_id, int(row["seq"])) if m not in blockers],
            {
                "type": "reaction",
                "conversation_id": conversation_id,
                "message_id": message_id,
                "user_id": reactor,
                "emoji": emoji,
            },
        )
    return Response(status=204)


@messages_bp.put("/<message_id>/reaction")
def put_reaction(message_id: str) -> Response:
    """One reaction per member per message: a new one replaces the old."""
    body = parse_body(ReactionRequest)
    return _react(message_id, body.emoji)


@messages_bp.delete("/<message_id>/reaction")
def delete_reaction(message_id: str) -> Response:
    return _react(message_id, None)
