"""Media routes of the chat service: `POST /api/v1/media`, `GET /api/v1/media/{id}` and
`GET /api/v1/media/{id}/thumbnail` (bytes and rules: services/common/media.py).

An upload is read and written to GridFS a chunk at a time, so a 16 MiB file never sits
in this worker's memory (nginx and the gateway stream it too). A download answers from
GridFS the same way, honouring a single `Range` (206) and `If-None-Match` with the
sha256 as ETag. Who may fetch a file: its uploader, and members of a conversation with a
live message carrying it, within the history they see; anyone else gets 404.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

from flask import Blueprint, Response, jsonify, request
from werkzeug.exceptions import ClientDisconnected, RequestEntityTooLarge

from services.chat import store
from services.chat.context import chat_context
from services.chat.routes import conversation_uuid
from services.common import media
from services.common.auth import require_user
from services.common.errors import ApiError, NotFound, PayloadTooLarge, ValidationError
from services.common.times import rfc3339

API_PREFIX = "/api/v1"
READ_CHUNK = 64 * 1024
# Access can end (the message deleted), so a client keeps a file for an hour at most.
CACHE_CONTROL = "private, max-age=3600"

media_bp = Blueprint("media", __name__, url_prefix=f"{API_PREFIX}/media")


class RangeNotSatisfiable(ApiError):
    status, code, default_message = 416, "range_not_satisfiable", "the range is outside the file"


def upload_json(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": str(row["id"]),
        "content_type": row["content_type"],
        "size": int(row["size"]),
        "sha256": row["sha256"],
        "created_at": rfc3339(row["created_at"]),
    }


def _body_chunks() -> Iterator[bytes]:
    stream = request.stream
    try:
        while chunk := stream.read(READ_CHUNK):
            yield chunk
    except RequestEntityTooLarge:
        raise media.TooLarge("over the limit") from None
    except (ClientDisconnected, OSError):
        raise ValidationError("the upload ended before its last byte") from None


@media_bp.post("")
def upload() -> tuple[Response, int]:
    uploader = require_user()
    ctx = chat_context()
    limit = ctx.settings.media_max_bytes
    declared = request.mimetype
    if declared not in media.TYPES:
        raise ValidationError(f"Content-Type: must be one of {', '.join(media.TYPES)}")
    media_id = str(uuid.uuid4())
    try:
        stored = media.store_upload(ctx.mongo, media_id, _body_chunks(), declared, limit)
    except media.TooLarge:
        raise PayloadTooLarge(f"a file has at most {limit // (1024 * 1024)} MiB") from None
    except media.WrongType as exc:
        raise ValidationError(str(exc)) from None
    if stored.size == 0:
        media.delete_files(ctx.mongo, [media_id])
        raise ValidationError("the body is empty: send the file's bytes")
    try:
        with ctx.db.transaction() as conn:
            row = store.insert_media(
                conn,
                media_id=media_id,
                uploader=uploader,
                content_type=declared,
                size=stored.size,
                sha256=stored.sha256,
            )
    except BaseException:
        media.delete_files(ctx.mongo, [media_id])
        raise
    response = jsonify(upload_json(row))
    response.headers["Location"] = f"{API_PREFIX}/media/{media_id}"
    return response, 201


def _visible(media_id: str) -> dict[str, Any]:
    viewer = require_user()
    media_id = conversation_uuid(media_id, "media")
    with chat_context().db.connection() as conn:
        row = store.media_for(conn, media_id, viewer)
    if row is None:
        raise NotFound("no such media")
    return row


def _not_modified(etag: str) -> Response | None:
    if request.if_none_match and request.if_none_match.contains(etag.strip('"')):
        response = Response(status=304)
        response.headers["ETag"] = etag
        return response
    return None


@media_bp.get("/<media_id>")
def download(media_id: str) -> Response:
    row = _visible(media_id)
    etag = f'"{row["sha256"]}"'
    if (unchanged := _not_modified(etag)) is not None:
        return unchanged
    grid_out = media.open_file(chat_context().mongo, str(row["id"]))
    if grid_out is None:  # the row is there, the bytes not (being erased): gone for the caller too
        raise NotFound("no such media")
    size = int(row["size"])
    start, stop, status = 0, size, 200
    wanted = request.range
    # One byte range is honoured; several (rare, multipart answers) get the whole file, as
    # does a range under an If-Range for another version.
    if (
        wanted is not None
        and wanted.units == "bytes"
        and len(wanted.ranges) == 1
        and (request.if_range.etag is None or request.if_range.etag == row["sha256"])
    ):
        span = wanted.range_for_length(size)
        if span is None:
            grid_out.close()
            raise RangeNotSatisfiable(headers={"Content-Range": f"bytes */{size}"})
        start, stop, status = span[0], span[1], 206
    response = Response(media.read_range(grid_out, start, stop), status=status, mimetype=row["content_type"])
    response.headers["Content-Length"] = str(stop - start)
    response.headers["ETag"] = etag
    response.headers["Accept-Ranges"] = "bytes"
    response.headers["Cache-Control"] = CACHE_CONTROL
    if status == 206:
        response.headers["Content-Range"] = f"bytes {start}-{stop - 1}/{size}"
    return response


def _off_the_loop(function: Any, *args: Any) -> Any:
    """Run CPU work in a native thread under gevent (Pillow lets go of the GIL while it
    decodes and resizes), so the sockets of this worker keep being served meanwhile."""
    from gevent import monkey  # noqa: PLC0415 - gevent is the chat worker's, not the tests'

    if monkey.is_module_patched("threading"):
        import gevent  # noqa: PLC0415

        return gevent.get_hub().threadpool.apply(function, args)
    return function(*args)


@media_bp.get("/<media_id>/thumbnail")
def thumbnail(media_id: str) -> Response:
    row = _visible(media_id)
    if row["content_type"] not in media.IMAGE_TYPES:
        raise NotFound("only images have a thumbnail")
    etag = f'"{row["sha256"]}-{media.THUMBNAIL_SIDE}"'
    if (unchanged := _not_modified(etag)) is not None:
        return unchanged
    mongo = chat_context().mongo
    media_id = str(row["id"])
    jpeg = media.stored_thumbnail(mongo, media_id)
    if jpeg is None:
        grid_out = media.open_file(mongo, media_id)
        if grid_out is None:
            raise NotFound("no such media")
        with grid_out:
            source = grid_out.read()
        jpeg = _off_the_loop(media.make_thumbnail, source)
        del source
        if jpeg is None:
            raise NotFound("this image cannot be decoded, so it has no thumbnail")
        media.keep_thumbnail(mongo, media_id, jpeg)
    response = Response(jpeg, mimetype="image/jpeg")
    response.headers["ETag"] = etag
    response.headers["Cache-Control"] = CACHE_CONTROL
    return response
