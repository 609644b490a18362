"""The contract's media through nginx: uploads as raw bodies (type checked by the bytes,
sha256, 413 above the cap, chunked or not), downloads with ETag, Range and 304, thumbnails
of images only, access for the uploader and the members who see a carrying message (404
for anyone else), `media_id` on messages with `message.media` in acks, live frames and
history, and the file erased with a deleted or expired message."""

from __future__ import annotations

import hashlib
import io
import os
import time
import uuid

import pytest
import requests
from PIL import Image
from stack_client import API, GROUP_VARS, User

pytestmark = pytest.mark.docker

MAX_BYTES = int(GROUP_VARS["whatsapp_media_max_bytes"])


@pytest.fixture(scope="module", autouse=True)
def stack(deployed_stack):
    assert deployed_stack[0].returncode == 0, "the deploy failed: see the deploy test"


def picture(fmt: str = "PNG", size: tuple[int, int] = (800, 400)) -> bytes:
    image = Image.new("RGB", size, (200, 30, 30))
    for x in range(0, size[0], 7):  # some detail, so the file is not trivially small
        image.putpixel((x, x % size[1]), (x % 255, 90, 160))
    out = io.BytesIO()
    image.save(out, fmt)
    return out.getvalue()


PDF = b"%PDF-1.7\n" + b"1 0 obj << /Type /Catalog >> endobj\n" * 20 + b"%%EOF\n"


def upload(user: User, data, content_type: str, **headers: str) -> requests.Response:
    return requests.post(
        f"{API}/media",
        data=data,
        headers={"Authorization": f"Bearer {user.api.token}", "Content-Type": content_type, **headers},
        timeout=60,
    )


def fetch(user: User, media_id: str, suffix: str = "", **headers: str) -> requests.Response:
    return requests.get(
        f"{API}/media/{media_id}{suffix}",
        headers={"Authorization": f"Bearer {user.api.token}", **headers},
        timeout=60,
    )


def code_of(answer: requests.Response) -> tuple[int, str | None]:
    return answer.status_code, (answer.json().get("error") or {}).get("code")


def send_with_media(
    user: User, conversation: str, media_id: str, body: str = "", **extra
) -> requests.Response:
    payload = {"client_msg_id": str(uuid.uuid4()), "media_id": media_id, **extra}
    if body:
        payload["body"] = body
    return user.api.call("POST", f"/conversations/{conversation}/messages", payload)


def test_an_upload_is_stored_with_its_sha256_and_refused_when_the_bytes_are_not_its_type():
    alice = User("Alice uploading")
    png = picture()
    answer = upload(alice, png, "image/png")
    assert answer.status_code == 201, answer.text
    stored = answer.json()
    assert stored["content_type"] == "image/png" and stored["size"] == len(png)
    assert stored["sha256"] == hashlib.sha256(png).hexdigest()
    assert answer.headers["Location"] == f"/api/v1/media/{stored['id']}"
    assert set(stored) == {"id", "content_type", "size", "sha256", "created_at"}
    # The declared type must be the bytes' own, and one of the contract's.
    assert code_of(upload(alice, png, "image/jpeg")) == (400, "validation_error")
    assert code_of(upload(alice, b"just some text, not a document" * 20, "application/pdf")) == (
        400,
        "validation_error",
    )
    assert code_of(upload(alice, b"hello", "text/plain")) == (400, "validation_error")
    assert code_of(upload(alice, b"", "image/png")) == (400, "validation_error")
    assert upload(alice, PDF, "application/pdf").status_code == 201
    # No token: 401 before any byte is stored.
    assert (
        requests.post(f"{API}/media", data=png, headers={"Content-Type": "image/png"}, timeout=30).status_code
        == 401
    )


def test_uploads_over_the_cap_get_413_with_or_without_a_length_and_big_ones_stream_through_intact():
    alice = User("Alice big files")
    head = picture("JPEG")
    over = head + os.urandom(MAX_BYTES + 1 - len(head))
    refused = upload(alice, over, "image/jpeg")
    assert code_of(refused) == (413, "payload_too_large"), refused.text

    def chunks(data: bytes, size: int = 256 * 1024):
        for i in range(0, len(data), size):
            yield data[i : i + size]

    # Chunked (no Content-Length): cut at the cap by the services, not passed on as complete.
    refused_chunked = upload(alice, chunks(over), "image/jpeg")
    assert refused_chunked.status_code == 413, refused_chunked.text
    # 12 MiB, chunked: stored whole, and read back byte for byte.
    big = head + os.urandom(12 * 1024 * 1024)
    answer = upload(alice, chunks(big), "image/jpeg")
    assert answer.status_code == 201, answer.text
    assert answer.json()["size"] == len(big)
    assert answer.json()["sha256"] == hashlib.sha256(big).hexdigest()
    back = fetch(alice, answer.json()["id"])
    assert back.status_code == 200 and back.content == big
    assert back.headers["Content-Length"] == str(len(big))


def test_downloads_have_etag_304_and_ranges_and_only_images_have_thumbnails():
    alice = User("Alice downloading")
    png = picture(size=(1200, 600))
    stored = upload(alice, png, "image/png").json()
    whole = fetch(alice, stored["id"])
    assert whole.status_code == 200 and whole.content == png
    assert whole.headers["Content-Type"] == "image/png"
    assert whole.headers["ETag"] == f'"{stored["sha256"]}"'
    assert whole.headers["Accept-Ranges"] == "bytes"
    assert fetch(alice, stored["id"], **{"If-None-Match": whole.headers["ETag"]}).status_code == 304
    part = fetch(alice, stored["id"], Range="bytes=100-199")
    assert part.status_code == 206 and part.content == png[100:200]
    assert part.headers["Content-Range"] == f"bytes 100-199/{len(png)}"
    tail = fetch(alice, stored["id"], Range="bytes=-50")
    assert tail.status_code == 206 and tail.content == png[-50:]
    past = fetch(alice, stored["id"], Range=f"bytes={len(png) + 10}-")
    assert code_of(past) == (416, "range_not_satisfiable")
    assert past.headers["Content-Range"] == f"bytes */{len(png)}"

    thumb = fetch(alice, stored["id"], "/thumbnail")
    assert thumb.status_code == 200 and thumb.headers["Content-Type"] == "image/jpeg"
    image = Image.open(io.BytesIO(thumb.content))
    assert image.format == "JPEG" and max(image.size) == 320 and image.size == (320, 160)
    again = fetch(alice, stored["id"], "/thumbnail")  # kept: the same picture
    assert again.content == thumb.content and again.headers["ETag"] == thumb.headers["ETag"]
    pdf = upload(alice, PDF, "application/pdf").json()
    assert code_of(fetch(alice, pdf["id"], "/thumbnail")) == (404, "not_found")
    assert code_of(fetch(alice, str(uuid.uuid4()))) == (404, "not_found")
    assert code_of(fetch(alice, "not-a-uuid")) == (404, "not_found")


def test_a_message_carries_media_seen_by_members_only_and_the_file_goes_with_its_deletion():
    alice, bob, eve = User("Alice sharing"), User("Bob receiving"), User("Eve outside")
    conversation = alice.direct_with(bob)
    png = picture()
    stored = upload(alice, png, "image/png").json()
    # Before any message carries it, only its uploader sees it.
    assert code_of(fetch(bob, stored["id"])) == (404, "not_found")
    # Only one's own uploads can be sent.
    assert code_of(send_with_media(bob, conversation, stored["id"])) == (400, "validation_error")
    assert code_of(
        bob.api.call(
            "POST", f"/conversations/{conversation}/messages", {"client_msg_id": "no-body", "body": ""}
        )
    ) == (400, "validation_error")
    expected = {"id": stored["id"], "content_type": "image/png", "size": len(png)}
    with bob.socket() as bob_socket, alice.socket() as alice_socket:
        ack = alice_socket.send_message(conversation, "", media_id=stored["id"])
        assert ack["type"] == "message.ack", ack
        assert ack["message"]["media"] == expected and ack["message"]["body"] == ""
        live = bob_socket.wait_for(
            lambda f: f.get("type") == "message.new" and f["message"]["id"] == ack["message"]["id"]
        )
        assert live["message"]["media"] == expected
    captioned = send_with_media(alice, conversation, stored["id"], "look at this")
    assert captioned.status_code == 201 and captioned.json()["media"] == expected, captioned.text
    # History is read from the message store, which message_processor fills just after the ack.
    deadline = time.monotonic() + 15
    while (history := {m["id"]: m for m in bob.history(conversation)}).keys() < {
        ack["message"]["id"],
        captioned.json()["id"],
    } and time.monotonic() < deadline:
        time.sleep(0.2)
    assert history[ack["message"]["id"]]["media"] == expected
    assert history[captioned.json()["id"]]["body"] == "look at this"
    got = fetch(bob, stored["id"])
    assert got.status_code == 200 and got.content == png
    assert fetch(bob, stored["id"], "/thumbnail").status_code == 200
    assert code_of(fetch(eve, stored["id"])) == (404, "not_found")

    # Deleting one message keeps the file the other one still carries; deleting both erases it.
    assert alice.api.call("DELETE", f"/messages/{ack['message']['id']}").status_code == 204
    assert fetch(bob, stored["id"]).status_code == 200
    assert alice.api.call("DELETE", f"/messages/{captioned.json()['id']}").status_code == 204
    assert code_of(fetch(bob, stored["id"])) == (404, "not_found")
    assert code_of(fetch(alice, stored["id"])) == (404, "not_found")
    assert all("media" not in m for m in bob.history(conversation))


def test_the_file_of_a_disappearing_message_is_erased_when_it_expires():
    alice, bob = User("Alice fleeting"), User("Bob fleeting")
    conversation = alice.direct_with(bob)
    stored = upload(alice, PDF, "application/pdf").json()
    sent = send_with_media(alice, conversation, stored["id"], "read fast", ttl_seconds=1)
    assert sent.status_code == 201 and sent.json()["media"]["id"] == stored["id"], sent.text
    # expire_messages runs every 10 s; the file goes with the message's body.
    deadline = time.monotonic() + 40
    while fetch(alice, stored["id"]).status_code == 200 and time.monotonic() < deadline:
        time.sleep(1)
    assert code_of(fetch(alice, stored["id"])) == (404, "not_found")
