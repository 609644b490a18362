"""Media in the chat service's SQL, on a real PostgreSQL (real_backends.py), and the type
and thumbnail rules of services/common/media.py: who may fetch a file, which uploads a
sender may attach, `message.media` on the recorded rows, and conversations.forget_media
keeping a file while a live message carries it."""

from __future__ import annotations

import hashlib
import io
import uuid

import psycopg
import pytest
from PIL import Image
from test_chat_store_sql import new_users, record

from services.chat import store
from services.chat.models import SendMessageRequest
from services.common import media
from services.common.message_shape import message_json


def new_media(conn, uploader: str, content_type: str = "image/png") -> str:
    media_id = str(uuid.uuid4())
    store.insert_media(
        conn,
        media_id=media_id,
        uploader=uploader,
        content_type=content_type,
        size=10,
        sha256=hashlib.sha256(media_id.encode()).hexdigest(),
    )
    return media_id


def send(conn, conversation_id: str, sender: str, media_id: str | None, body: str = "", **extra):
    return record(conn, conversation_id, sender, body=body, media_id=media_id, ttl_seconds=extra.get("ttl"))


def test_a_file_is_seen_by_its_uploader_and_by_members_who_see_a_live_message_carrying_it(conn):
    alice, bob, late, eve = new_users(conn, 4)
    group = store.create_group(conn, alice, "g", [bob])
    photo = new_media(conn, alice)
    assert store.media_for(conn, photo, alice) is not None
    assert store.media_for(conn, photo, bob) is None  # not sent yet
    row = send(conn, group, alice, photo)
    assert message_json(row)["media"] == {"id": photo, "content_type": "image/png", "size": 10}
    assert message_json(row)["body"] == ""
    assert store.media_for(conn, photo, bob) is not None
    store.add_member(conn, group, late)  # joins after: the message is before the view
    assert store.media_for(conn, photo, late) is None
    assert store.media_for(conn, photo, eve) is None
    store.delete_message(conn, row["id"], alice)
    assert store.media_for(conn, photo, bob) is None
    assert store.media_for(conn, photo, alice) is not None  # the row goes by forget_media


def test_only_ones_own_uploads_can_be_attached(conn):
    alice, bob = new_users(conn, 2)
    mine, theirs = new_media(conn, alice), new_media(conn, bob)
    asked = [(alice, mine), (alice, theirs), (alice, str(uuid.uuid4()))]
    assert store.own_media(conn, asked) == {(alice, mine)}
    assert store.own_media(conn, []) == set()


def test_forget_media_keeps_a_file_while_a_live_message_carries_it(conn):
    alice, bob = new_users(conn, 2)
    conversation, _ = store.create_direct(conn, alice, bob)
    photo, unsent, other = new_media(conn, alice), new_media(conn, alice), new_media(conn, bob)
    first = send(conn, conversation, alice, photo)
    second = send(conn, conversation, alice, photo, "again")
    store.delete_message(conn, first["id"], alice)
    assert media.forget(conn, [photo]) == []  # the second message still carries it
    store.delete_message(conn, second["id"], alice)
    assert media.forget(conn, [photo]) == [photo]
    # The erased messages lost their reference (ON DELETE SET NULL), nothing else changed.
    gone = store.messages_in_range(conn, conversation, 0, 10**9)
    assert [r["media_id"] for r in gone] == [None, None]
    # A departing account: every upload of its own, none of anyone else's.
    assert media.forget(conn, uploader=alice) == [unsent]
    assert store.media_for(conn, other, bob) is not None
    assert media.forget(conn) == []


def test_an_expired_message_hides_its_file_and_frees_it_once_erased(conn):
    alice, bob = new_users(conn, 2)
    conversation, _ = store.create_direct(conn, alice, bob)
    photo = new_media(conn, alice)
    send(conn, conversation, alice, photo, ttl=1)
    conn.execute(
        "UPDATE conversations.messages SET expires_at = now() - interval '1 s' WHERE media_id = %s", (photo,)
    )
    assert store.media_for(conn, photo, bob) is None
    # Its body not erased yet, it still holds the file (expire_messages erases, then forgets).
    assert media.forget(conn, [photo]) == []
    conn.execute("UPDATE conversations.messages SET body = NULL WHERE media_id = %s", (photo,))
    assert media.forget(conn, [photo]) == [photo]


def test_an_empty_body_needs_media_both_in_the_request_and_in_the_table(conn):
    alice, bob = new_users(conn, 2)
    conversation, _ = store.create_direct(conn, alice, bob)
    with pytest.raises(ValueError, match="media_id"):
        SendMessageRequest.model_validate({"client_msg_id": "a"})
    with pytest.raises(ValueError, match="media_id"):
        SendMessageRequest.model_validate({"client_msg_id": "a", "body": ""})
    with pytest.raises(ValueError, match="blank"):
        SendMessageRequest.model_validate(
            {"client_msg_id": "a", "body": "   ", "media_id": str(uuid.uuid4())}
        )
    ok = SendMessageRequest.model_validate({"client_msg_id": "a", "media_id": str(uuid.uuid4())})
    assert ok.body == ""
    with conn.transaction(), pytest.raises(psycopg.errors.CheckViolation):
        send(conn, conversation, alice, None, "")


def png_bytes(size: tuple[int, int]) -> bytes:
    out = io.BytesIO()
    Image.new("RGBA", size, (10, 200, 30, 128)).save(out, "PNG")
    return out.getvalue()


@pytest.mark.parametrize(
    ("head", "declared", "found"),
    [
        (png_bytes((4, 4)), "image/png", "image/png"),
        (b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n", "application/pdf", "application/pdf"),
        (b"OggS\x00\x02" + b"\x00" * 40, "audio/ogg", "audio/ogg"),
        (b"ID3\x04\x00\x00\x00\x00\x00\x00" + b"\x00" * 40, "audio/mpeg", "audio/mpeg"),
        (b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom", "video/mp4", "video/mp4"),
        (b"plain text", "application/pdf", None),
    ],
)
def test_types_are_told_by_the_bytes(head, declared, found):
    assert media.detected_type(head) == found
    if found is None:
        with pytest.raises(media.WrongType):
            media._check_type(head, declared)
    else:
        media._check_type(head, declared)


def test_thumbnails_fit_320_pixels_and_undecodable_images_get_none():
    thumb = media.make_thumbnail(png_bytes((1000, 250)))
    assert thumb is not None
    image = Image.open(io.BytesIO(thumb))
    assert (image.format, image.size, image.mode) == ("JPEG", (320, 80), "RGB")
    small = Image.open(io.BytesIO(media.make_thumbnail(png_bytes((100, 50)))))
    assert small.size == (100, 50)  # never enlarged
    assert media.make_thumbnail(png_bytes((8, 8))[:30]) is None


def test_the_sweep_finds_uploads_older_than_a_day_and_removes_only_those_no_message_carries(conn):
    from services.scheduled_jobs.media import rows_of, unsent_uploads  # noqa: PLC0415

    alice, bob = new_users(conn, 2)
    conversation, _ = store.create_direct(conn, alice, bob)
    old_unsent, old_sent, young = new_media(conn, alice), new_media(conn, alice), new_media(conn, alice)
    send(conn, conversation, alice, old_sent, "kept")
    conn.execute(
        "UPDATE conversations.media SET created_at = now() - interval '25 hours' WHERE id = ANY(%s::uuid[])",
        ([old_unsent, old_sent],),
    )
    old = unsent_uploads(conn, 500)
    assert set(old) >= {old_unsent, old_sent} and young not in old
    assert media.forget(conn, old) == [old_unsent]  # the sent one stays while its message lives
    assert rows_of(conn, [old_unsent, old_sent, young]) == {old_sent, young}
