"""Media files (photos, voice notes, documents): bytes in MongoDB GridFS, facts in PostgreSQL.

`conversations.media` (migration conversations 0007) says what a file is: uploader, type,
size, sha256. GridFS bucket `media` of the message store holds its bytes under the same id
(chunks of 255 KiB, so nothing holds a whole file to write or read it), bucket `thumbnails`
an image's JPEG thumbnail, made at its first request and kept.

Order keeps a row from naming missing bytes: the bytes are written before the row commits,
and deleted after the row is gone. Bytes left without a row (a crash between the two) are
removed by scheduled_jobs' sweep (`sweep_media`), with uploads no message refers to.

A file's type is the one its client declares, checked against its first bytes (the magic
numbers `filetype` knows): a PNG declared `image/jpeg`, or text declared `application/pdf`,
is refused.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import filetype
import psycopg
from bson import Binary
from gridfs import GridFSBucket, GridOut, NoFile
from gridfs.errors import FileExists
from pymongo.database import Database
from pymongo.errors import DuplicateKeyError

MEDIA_BUCKET = "media"
THUMBNAIL_BUCKET = "thumbnails"
TYPES = (
    "image/jpeg",
    "image/png",
    "image/webp",
    "audio/ogg",
    "audio/mpeg",
    "video/mp4",
    "application/pdf",
)
IMAGE_TYPES = frozenset({"image/jpeg", "image/png", "image/webp"})
# filetype looks at no more than the first 262 bytes.
HEAD_BYTES = 262
THUMBNAIL_SIDE = 320
# An image of more pixels than this gets no thumbnail (a decompression bomb: a few KiB of
# PNG that would decode to gigabytes).
MAX_THUMBNAIL_SOURCE_PIXELS = 50_000_000
# An upload younger than this is never swept, referenced or not (still being sent).
UPLOAD_GRACE_SECONDS = 24 * 3600


# `message.media` of the contract for a row `m` of conversations.messages (the subquery runs
# only for the rare rows that carry a file): chat's message columns and the user's export.
MESSAGE_MEDIA_SQL = (
    "CASE WHEN m.media_id IS NULL THEN NULL ELSE (SELECT json_build_object("
    "'id', x.id, 'content_type', x.content_type, 'size', x.size) "
    "FROM conversations.media x WHERE x.id = m.media_id) END AS media"
)


class WrongType(ValueError):
    """The bytes are not of the declared type."""


class TooLarge(ValueError):
    """More bytes than the limit."""


@dataclass(frozen=True)
class Stored:
    size: int
    sha256: str


def detected_type(head: bytes) -> str | None:
    kind = filetype.guess(head[:HEAD_BYTES])
    return kind.mime if kind is not None else None


def media_bucket(db: Database) -> GridFSBucket:
    return GridFSBucket(db, bucket_name=MEDIA_BUCKET)


def thumbnail_bucket(db: Database) -> GridFSBucket:
    return GridFSBucket(db, bucket_name=THUMBNAIL_BUCKET)


CHUNK_BYTES = 255 * 1024  # GridFS's default chunk size
# Chunks written per insert: ~1 MiB. (pymongo's own GridIn holds up to 48 MB of chunks
# before its first insert: a whole 16 MiB file, twice over once encoded, per upload.
# Measured: 20 concurrent 16 MiB uploads peaked at 831 MiB in one process with it.)
CHUNKS_PER_INSERT = 4
_indexed: set[int] = set()


def _ensure_indexes(db: Database) -> None:
    """The indexes GridFS readers expect (as GridFSBucket makes them), once per process."""
    if id(db.client) in _indexed:
        return
    db[f"{MEDIA_BUCKET}.chunks"].create_index([("files_id", 1), ("n", 1)], unique=True)
    db[f"{MEDIA_BUCKET}.files"].create_index([("filename", 1), ("uploadDate", 1)])
    _indexed.add(id(db.client))


def store_upload(
    db: Database, media_id: str, chunks: Iterable[bytes], declared_type: str, max_bytes: int
) -> Stored:
    """Write the chunks to GridFS as `media_id`, checking the type by the first bytes and
    the size as they come; on any failure (WrongType, TooLarge, the client gone, MongoDB
    down) what was written is removed and the error raised.

    The files document comes first (length 0, its uploadDate), so bytes an upload left
    behind in a crash are found by it (sweep_media); readers never see it before the
    PostgreSQL row commits, by which time its length is the file's."""
    _ensure_indexes(db)
    files = db[f"{MEDIA_BUCKET}.files"]
    parts = db[f"{MEDIA_BUCKET}.chunks"]
    files.insert_one(
        {
            "_id": media_id,
            "length": 0,
            "chunkSize": CHUNK_BYTES,
            "uploadDate": datetime.now(UTC),
            "filename": media_id,
            "metadata": {"content_type": declared_type},
        }
    )
    digest = hashlib.sha256()
    size = 0
    head = b""
    checked = False
    buffer = bytearray()
    pending: list[dict[str, Any]] = []
    n = 0
    try:
        for chunk in chunks:
            if not chunk:
                continue
            size += len(chunk)
            if size > max_bytes:
                raise TooLarge(f"a file has at most {max_bytes} bytes")
            if not checked:
                head += chunk[: HEAD_BYTES - len(head)]
                if len(head) >= HEAD_BYTES:
                    _check_type(head, declared_type)
                    checked = True
            digest.update(chunk)
            buffer += chunk
            while len(buffer) >= CHUNK_BYTES:
                pending.append({"files_id": media_id, "n": n, "data": Binary(bytes(buffer[:CHUNK_BYTES]))})
                n += 1
                del buffer[:CHUNK_BYTES]
                if len(pending) >= CHUNKS_PER_INSERT:
                    parts.insert_many(pending)
                    pending = []
        if not checked:
            _check_type(head, declared_type)
        if buffer:
            pending.append({"files_id": media_id, "n": n, "data": Binary(bytes(buffer))})
        if pending:
            parts.insert_many(pending)
        files.update_one({"_id": media_id}, {"$set": {"length": size}})
    except BaseException:
        delete_files(db, [media_id])
        raise
    return Stored(size=size, sha256=digest.hexdigest())


def _check_type(head: bytes, declared_type: str) -> None:
    found = detected_type(head)
    if found != declared_type:
        raise WrongType(
            f"the bytes are not {declared_type}" + (f" (they look like {found})" if found else "")
        )


def open_file(db: Database, media_id: str) -> GridOut | None:
    try:
        return media_bucket(db).open_download_stream(media_id)
    except NoFile:
        return None


def read_range(grid_out: GridOut, start: int, stop: int, chunk_bytes: int = 256 * 1024) -> Iterator[bytes]:
    """Bytes start..stop-1 of the file, a chunk at a time; the file is closed at the end."""
    try:
        grid_out.seek(start)
        remaining = stop - start
        while remaining > 0:
            data = grid_out.read(min(chunk_bytes, remaining))
            if not data:
                break
            remaining -= len(data)
            yield data
    finally:
        grid_out.close()


def stored_thumbnail(db: Database, media_id: str) -> bytes | None:
    try:
        return thumbnail_bucket(db).open_download_stream(media_id).read()
    except NoFile:
        return None


def make_thumbnail(source: bytes) -> bytes | None:
    """A JPEG of at most THUMBNAIL_SIDE px on the long side, or None if the image cannot be
    decoded (damaged, or too many pixels). CPU-bound: callers under gevent run it in a thread."""
    from PIL import Image, ImageOps  # noqa: PLC0415 - only the thumbnail route needs Pillow

    try:
        with Image.open(io.BytesIO(source)) as image:
            if image.width * image.height > MAX_THUMBNAIL_SOURCE_PIXELS:
                return None
            image.draft("RGB", (THUMBNAIL_SIDE, THUMBNAIL_SIDE))  # JPEG: decode at a smaller scale
            small = ImageOps.exif_transpose(image)
            small.thumbnail((THUMBNAIL_SIDE, THUMBNAIL_SIDE))
            if small.mode != "RGB":
                small = small.convert("RGB")
            out = io.BytesIO()
            small.save(out, "JPEG", quality=80, optimize=True)
            return out.getvalue()
    except (OSError, ValueError, Image.DecompressionBombError):
        return None


def keep_thumbnail(db: Database, media_id: str, jpeg: bytes) -> None:
    """Store a thumbnail made once; another request making it at the same time is harmless."""
    bucket = thumbnail_bucket(db)
    try:
        bucket.upload_from_stream_with_id(media_id, media_id, io.BytesIO(jpeg))
    except (FileExists, DuplicateKeyError):
        # Two first requests at once (two browsers opening the chat): the other one is
        # storing the same picture; this one answers with its own copy.
        return


def delete_files(db: Database, media_ids: list[str]) -> int:
    """Remove the bytes and thumbnails of these files (absent ones are no error)."""
    if not media_ids:
        return 0
    deleted = 0
    for bucket in (MEDIA_BUCKET, THUMBNAIL_BUCKET):
        result = db[f"{bucket}.files"].delete_many({"_id": {"$in": media_ids}})
        db[f"{bucket}.chunks"].delete_many({"files_id": {"$in": media_ids}})
        if bucket == MEDIA_BUCKET:
            deleted = result.deleted_count
    return deleted


def forget(conn: psycopg.Connection, media_ids: Iterable[str] = (), uploader: str | None = None) -> list[str]:
    """Delete, in the caller's transaction, the rows of these files (or of every upload of
    `uploader`) that no live message refers to any more; their ids, whose bytes the caller
    deletes with `delete_files` after the commit. (conversations.forget_media, 0007.)"""
    ids = sorted({str(i) for i in media_ids if i})
    if not ids and uploader is None:
        return []
    rows = conn.execute(
        "SELECT id FROM conversations.forget_media(%s::uuid[], %s::uuid) AS id", (ids, uploader)
    ).fetchall()
    return [str(r["id"]) for r in rows]
