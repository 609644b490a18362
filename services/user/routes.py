"""HTTP routes of the user service, under /api/v1 (the gateway forwards paths unchanged).

Every view authenticates first (401 before anything else), then validates its input
(400), and only then reaches the store, so bad input never costs a database round trip.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

import psycopg
import redis
from flask import Blueprint, Response, g, jsonify, request

from services.common import media
from services.common.auth import require_user
from services.common.bodies import parse_body
from services.common.errors import Conflict, Forbidden, NotFound, Unauthorized, ValidationError
from services.common.members import members_by_conversation, seeing
from services.common.message_shape import message_json
from services.common.mongo import MESSAGES
from services.common.times import rfc3339, utcnow
from services.user import store
from services.user.context import UserContext, user_context
from services.user.models import (
    DeleteAccountRequest,
    DeviceRegistration,
    KeysUpload,
    LoginRequest,
    ProfileUpdate,
    RefreshTokenRequest,
    RegisterRequest,
    UserReference,
    check_phone,
)
from services.user.presence import is_online, may_see_presence
from services.user.views import seen_by, user_json, user_uuid

log = logging.getLogger(__name__)

API_PREFIX = "/api/v1"
WRONG_CREDENTIALS = "wrong phone number or password"

auth_bp = Blueprint("auth", __name__, url_prefix=f"{API_PREFIX}/auth")
users_bp = Blueprint("users", __name__, url_prefix=f"{API_PREFIX}/users")
contacts_bp = Blueprint("contacts", __name__, url_prefix=f"{API_PREFIX}/contacts")
blocks_bp = Blueprint("blocks", __name__, url_prefix=f"{API_PREFIX}/blocks")
devices_bp = Blueprint("devices", __name__, url_prefix=f"{API_PREFIX}/devices")
sessions_bp = Blueprint("sessions", __name__, url_prefix=f"{API_PREFIX}/sessions")
keys_bp = Blueprint("keys", __name__, url_prefix=f"{API_PREFIX}/keys")
BLUEPRINTS = (auth_bp, users_bp, contacts_bp, blocks_bp, devices_bp, sessions_bp, keys_bp)


def no_content() -> Response:
    return Response(status=204)


# ---- auth --------------------------------------------------------------------------------


@auth_bp.post("/register")
def register() -> tuple[Response, int]:
    body = parse_body(RegisterRequest)
    ctx = user_context()
    password_hash = ctx.passwords.hash(body.password)  # slow on purpose: outside any transaction
    with ctx.db.transaction() as conn:
        user = store.create_user(
            conn, phone=body.phone, display_name=body.display_name, password_hash=password_hash
        )
        if user is None:
            raise Conflict("this phone number is already registered")
        pair = ctx.tokens.issue_pair(conn, user["id"], device_name=body.device_name)
    return jsonify({"user": user_json(user, include_phone=True), **pair}), 201


@auth_bp.post("/login")
def login() -> Response:
    body = parse_body(LoginRequest)
    ctx = user_context()
    # 429 once this phone has too many recent failures (services/user/throttle.py); else the
    # attempt counts as a failure until it proves otherwise.
    attempt = ctx.login_throttle.begin(body.phone)
    try:
        with ctx.db.connection() as conn:
            row = store.get_login(conn, body.phone)
        # Unknown phone and wrong password: same bcrypt work, same answer. 503 when the
        # password pool is full (services/user/passwords.py).
        verified = ctx.passwords.verify(body.password, row["password_hash"] if row else None)
    except BaseException:
        attempt.discard()  # the password was never checked: not a failure
        raise
    if not verified or row is None:
        raise Unauthorized(WRONG_CREDENTIALS)
    attempt.discard()
    with ctx.db.transaction() as conn:
        pair = ctx.tokens.issue_pair(conn, row["id"], device_name=body.device_name)
    return jsonify({"user": user_json(row, include_phone=True), **pair})


@auth_bp.post("/refresh")
def refresh() -> Response:
    body = parse_body(RefreshTokenRequest)
    ctx = user_context()
    return jsonify(ctx.tokens.rotate(ctx.db, body.refresh_token))


@auth_bp.post("/logout")
def logout() -> Response:
    user_id = require_user()
    body = parse_body(RefreshTokenRequest)
    ctx = user_context()
    ctx.tokens.revoke_family_of(ctx.db, body.refresh_token, user_id, g.get("session_id"))
    return no_content()


@auth_bp.post("/logout-all")
def logout_all() -> Response:
    """Every session of the caller ends, the current one included; their sockets close."""
    user_id = require_user()
    ctx = user_context()
    ctx.tokens.revoke_sessions(ctx.db, user_id)
    if g.get("session_id"):
        # Its refresh tokens may be gone already; its sockets still end.
        ctx.tokens.end_session(g.session_id)
    return no_content()


# ---- users -------------------------------------------------------------------------------


def _own_user_json(row: dict[str, Any]) -> dict[str, Any]:
    """`user` as its owner sees it: with the phone and the owner's privacy settings."""
    return {**user_json(row, include_phone=True), "last_seen_visibility": row["last_seen_visibility"]}


def _own_profile(user_id: str) -> dict[str, Any]:
    with user_context().db.connection() as conn:
        row = store.get_user(conn, user_id, viewer=user_id)
    if row is None:
        # A valid token for an account that no longer exists.
        raise NotFound("no such user")
    return _own_user_json(row)


@users_bp.get("/me")
def get_me() -> Response:
    return jsonify(_own_profile(require_user()))


@users_bp.patch("/me")
def update_me() -> Response:
    user_id = require_user()
    body = parse_body(ProfileUpdate)
    changes = body.model_dump(include=body.model_fields_set)
    if not changes:
        return jsonify(_own_profile(user_id))
    with user_context().db.connection() as conn:
        row = store.update_profile(conn, user_id, changes)
    if row is None:
        raise NotFound("no such user")
    return jsonify(_own_user_json(row))


@users_bp.get("")
def find_by_phone() -> Response:
    viewer = require_user()
    raw = request.args.get("phone")
    if raw is None:
        raise ValidationError("phone: query parameter is required")
    # An unencoded `+` arrives as a space (form encoding): `?phone=+1555...` must still work.
    phone = "+" + raw[1:] if raw.startswith(" ") else raw
    try:
        check_phone(phone)
    except ValueError as exc:
        raise ValidationError(f"phone: {exc}") from None
    with user_context().db.connection() as conn:
        rows = store.find_users_by_phone(conn, phone, viewer=viewer)
    # The caller typed the number: showing it back reveals nothing.
    return jsonify({"users": [user_json(row, include_phone=True) for row in rows]})


@users_bp.get("/<user_id>")
def get_user(user_id: str) -> Response:
    viewer = require_user()
    target = user_uuid(user_id)
    with user_context().db.connection() as conn:
        row = store.get_user(conn, target, viewer=viewer)
    if row is None:
        raise NotFound("no such user")
    return jsonify(seen_by(row, viewer))


@users_bp.get("/<user_id>/presence")
def get_presence(user_id: str) -> Response:
    viewer = require_user()
    target = user_uuid(user_id)
    ctx = user_context()
    with ctx.db.connection() as conn:
        row = store.get_presence(conn, target, viewer=viewer)
    if row is None:
        raise NotFound("no such user")
    if row["blocked_viewer"]:
        # Someone who blocked you shows neither online state nor last seen.
        return jsonify({"user_id": target, "online": False, "last_seen": None})
    if not may_see_presence(
        row["last_seen_visibility"], is_self=target == viewer, viewer_is_contact=row["viewer_is_contact"]
    ):
        # Hidden by the user's last_seen_visibility: neither state is known to this viewer.
        return jsonify({"user_id": target, "online": None, "last_seen": None})
    return jsonify(
        {"user_id": target, "online": is_online(ctx.redis, target), "last_seen": rfc3339(row["last_seen"])}
    )


# ---- leaving for good ------------------------------------------------------------------------


@users_bp.get("/me/export")
def export_me() -> Response:
    """Everything stored about the caller, in one read-only snapshot of PostgreSQL (the
    message rows there are the record; MongoDB holds copies)."""
    user_id = require_user()
    ctx = user_context()
    with ctx.db.connection() as conn, conn.transaction():
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
        row = store.get_user(conn, user_id, viewer=user_id)
        if row is None:
            raise NotFound("no such user")
        export = {
            "user": _own_user_json(row),
            "contacts": [seen_by(r, user_id) for r in store.list_contacts(conn, user_id)],
            "blocks": [seen_by(r, user_id) for r in store.list_blocks(conn, user_id)],
            "devices": [
                {
                    "id": str(d["id"]),
                    "platform": d["platform"],
                    "token": d["token"],
                    "created_at": rfc3339(d["created_at"]),
                }
                for d in store.list_devices(conn, user_id)
            ],
            "sessions": [
                _session_json(s, g.get("session_id")) for s in store.list_sessions(conn, user_id, utcnow())
            ],
            "conversations": [
                {"id": str(c["id"]), "type": c["type"], "title": c["title"], "role": c["role"]}
                for c in store.my_conversations(conn, user_id)
            ],
            "messages": [message_json(m) for m in store.my_messages(conn, user_id)],
        }
    response = jsonify(export)
    response.headers["Content-Disposition"] = 'attachment; filename="whatsapp-export.json"'
    response.headers["Cache-Control"] = "no-store"
    return response


@users_bp.delete("/me")
def delete_me() -> Response:
    """The account is gone, in one PostgreSQL transaction (both schemas) with the MongoDB
    copies of its messages erased before it commits: a failure anywhere answers 503 and
    changes nothing that a retry would not finish. Then its sockets close and the members
    of its conversations are told (message.deleted, member.removed)."""
    user_id = require_user()
    body = parse_body(DeleteAccountRequest)
    ctx = user_context()
    with ctx.db.connection() as conn:
        stored_hash = store.password_hash_of(conn, user_id)
    if stored_hash is None:
        raise NotFound("no such user")
    if not ctx.passwords.verify(body.password, stored_hash):
        raise Unauthorized("wrong password")
    with ctx.db.transaction() as conn:
        sessions = store.session_ids(conn, user_id)
        events = store.delete_account(conn, user_id)
        # Every upload of the account: its messages are erased, so none is carried any more.
        forgotten = media.forget(conn, uploader=user_id)
        touched = sorted({str(e["conv_id"]) for e in events})
        members = members_by_conversation(conn, touched) if touched else {}
        erased = [e["msg_id"] for e in events if e["event"] == "erased"]
        if erased:
            ctx.mongo[MESSAGES].update_many(
                {"_id": {"$in": erased}}, {"$set": {"body": None, "deleted": True}}
            )
    media.delete_files(ctx.mongo, forgotten)
    for sid in sessions:
        ctx.tokens.end_session(sid)
    _announce_departure(ctx, user_id, events, members)
    return no_content()


def _announce_departure(
    ctx: UserContext, user_id: str, events: list[dict[str, Any]], members: dict[str, dict[str, int]]
) -> None:
    """Best effort, after the commit (the stores already say it all): one Redis message for
    every chat instance with the frames of the departure."""
    pipe = ctx.redis.pipeline(transaction=False)
    for e in events:
        conversation_id = str(e["conv_id"])
        marks = members.get(conversation_id, {})
        if e["event"] == "erased":
            to = seeing(marks, int(e["msg_seq"]))
            frame = {"type": "message.deleted", "conversation_id": conversation_id, "message_id": e["msg_id"]}
        else:
            to = list(marks)
            frame = {"type": "member.removed", "conversation_id": conversation_id, "user_id": user_id}
        if to:
            pipe.publish(
                ctx.settings.events_channel, json.dumps({"to": to, "frame": frame}, separators=(",", ":"))
            )
    try:
        pipe.execute()
    except redis.RedisError as exc:
        log.warning("the departure of a deleted account was not announced: %s", exc)


# ---- contacts and blocks (the same three routes over two tables) ---------------------------


def _relation_routes(
    bp: Blueprint,
    *,
    key: str,
    list_rows: Callable[[psycopg.Connection, str], list[dict[str, Any]]],
    add: Callable[[psycopg.Connection, str, str], bool],
    remove: Callable[[psycopg.Connection, str, str], bool],
) -> None:
    @bp.get("")
    def list_related() -> Response:
        viewer = require_user()
        with user_context().db.connection() as conn:
            rows = list_rows(conn, viewer)
        return jsonify({key: [seen_by(row, viewer) for row in rows]})

    @bp.post("")
    def add_related() -> tuple[Response, int]:
        viewer = require_user()
        target = user_uuid(parse_body(UserReference).user_id)
        if target == viewer:
            raise ValidationError("user_id: cannot be yourself")
        with user_context().db.connection() as conn:
            if not add(conn, viewer, target):
                raise NotFound("no such user")
            row = store.get_user(conn, target, viewer=viewer)
        if row is None:  # deleted in between
            raise NotFound("no such user")
        return jsonify(seen_by(row, viewer)), 201

    @bp.delete("/<user_id>")
    def remove_related(user_id: str) -> Response:
        viewer = require_user()
        target = user_uuid(user_id)
        with user_context().db.connection() as conn:
            if not remove(conn, viewer, target):
                raise NotFound(f"not in your {key}")
        return no_content()


_relation_routes(
    contacts_bp,
    key="contacts",
    list_rows=store.list_contacts,
    add=store.add_contact,
    remove=store.remove_contact,
)
_relation_routes(
    blocks_bp, key="blocks", list_rows=store.list_blocks, add=store.add_block, remove=store.remove_block
)


# ---- devices -----------------------------------------------------------------------------


@devices_bp.post("")
def add_device() -> tuple[Response, int]:
    user_id = require_user()
    ctx = user_context()
    body = parse_body(
        DeviceRegistration, context={"webhook_allowed_hosts": ctx.settings.webhook_allowed_hosts}
    )
    with ctx.db.connection() as conn:
        try:
            device_id = store.add_device(
                conn, user_id, body.platform, body.token, session_id=g.get("session_id")
            )
        except store.TooManyDevices as exc:
            raise Conflict(f"{exc}: remove one first") from None
        except store.SessionEnded as exc:
            raise Unauthorized(str(exc)) from None
    if device_id is None:
        # A valid token whose account is gone: like every other route, 404 (never a 500).
        raise NotFound("no such user")
    return jsonify({"id": str(device_id), "platform": body.platform}), 201


@devices_bp.delete("/<device_id>")
def delete_device(device_id: str) -> Response:
    user_id = require_user()
    target = user_uuid(device_id, what="device")
    with user_context().db.connection() as conn:
        if not store.delete_device(conn, user_id, target):
            # Someone else's device answers exactly like a missing one: never 403.
            raise NotFound("no such device")
    return no_content()


# ---- sessions ----------------------------------------------------------------------------


def _session_json(row: dict[str, Any], current: str | None) -> dict[str, Any]:
    return {
        "id": str(row["id"]),
        "device_name": row["device_name"],
        "created_at": rfc3339(row["created_at"]),
        "last_used_at": rfc3339(row["last_used_at"]),
        "current": str(row["id"]) == current,
    }


@sessions_bp.get("")
def list_sessions() -> Response:
    user_id = require_user()
    with user_context().db.connection() as conn:
        rows = store.list_sessions(conn, user_id, utcnow())
    current = g.get("session_id")
    return jsonify({"sessions": [_session_json(row, current) for row in rows]})


@sessions_bp.delete("/<session_id>")
def delete_session(session_id: str) -> Response:
    """Revoke one of the caller's own sessions and close its sockets; anyone else's, or one
    that is no longer live, answers like a missing one."""
    user_id = require_user()
    target = user_uuid(session_id, what="session")
    ctx = user_context()
    if not ctx.tokens.revoke_sessions(ctx.db, user_id, target):
        raise NotFound("no such session")
    return no_content()


# ---- end-to-end encryption: key distribution (public keys only) --------------------------


def _caller_session() -> tuple[str, str]:
    user_id = require_user()
    session_id = g.get("session_id")
    if not session_id:
        raise Unauthorized("this access token names no session: log in again")
    return user_id, session_id


@keys_bp.put("")
def put_keys() -> Response:
    user_id, session_id = _caller_session()
    body = parse_body(KeysUpload)
    key_ids = [key.key_id for key in body.one_time_prekeys]
    if len(set(key_ids)) != len(key_ids):
        raise Conflict("a key_id is repeated in this upload")
    try:
        with user_context().db.transaction() as conn:
            upload = store.KeyUpload(
                session_id=session_id,
                user_id=user_id,
                identity_key=body.identity_key,
                signed_prekey=body.signed_prekey.model_dump() if body.signed_prekey else None,
                one_time_prekeys=[key.model_dump() for key in body.one_time_prekeys],
            )
            store.put_keys(conn, upload, utcnow())
    except store.TooManyPrekeys:
        raise Conflict(f"a session keeps at most {store.MAX_PREKEYS_PER_SESSION} one-time prekeys") from None
    except store.RepeatedPrekey:
        raise Conflict("a key_id of this upload is in the session's stock already") from None
    except psycopg.errors.ForeignKeyViolation:
        # The session ended (its row pruned) while its access token still runs.
        raise Unauthorized("this session has ended: log in again") from None
    return no_content()


@keys_bp.get("/count")
def count_keys() -> Response:
    _, session_id = _caller_session()
    with user_context().db.connection() as conn:
        return jsonify({"one_time_prekeys": store.count_prekeys(conn, session_id)})


@users_bp.get("/<user_id>/keys")
def get_user_keys(user_id: str) -> Response:
    """One entry per live session of that user with keys, each claiming one one-time prekey."""
    caller = require_user()
    target = user_uuid(user_id)
    with user_context().db.transaction() as conn:
        blocked = store.blocked_by(conn, target, caller)
        if blocked is None:
            raise NotFound("no such user")
        if blocked:
            raise Forbidden("this user has blocked you", code="blocked")
        devices = store.claim_keys(conn, target, utcnow())
    out = []
    for row in devices:
        device = {
            "session_id": str(row["session_id"]),
            "identity_key": row["identity_key"],
            "signed_prekey": {
                "key_id": row["signed_prekey_id"],
                "public_key": row["signed_prekey"],
                "signature": row["signed_prekey_signature"],
            },
        }
        if row["one_time_prekey"]:
            device["one_time_prekey"] = dict(row["one_time_prekey"])
        out.append(device)
    return jsonify({"devices": out})
