"""Notification jobs: what validates, what is refused (dead-lettered), what the payload says."""

from __future__ import annotations

import json
import uuid

import pytest
from test_notification_helpers import JOB, job

from services.notification.base import Device, PushPayload, truncate_utf8
from services.notification.jobs import InvalidJob, PushJob, for_job, parse_job


def test_a_job_from_json_bytes_validates():
    parsed = parse_job(json.dumps(JOB).encode())
    assert isinstance(parsed, PushJob)
    assert parsed.user_id_text == JOB["user_id"]
    assert parsed.sent_at_text() == "2026-11-25T10:00:00.123Z"
    assert parsed.request_id == "req-abc.123"


def test_fields_a_newer_producer_adds_are_ignored():
    assert parse_job(job(priority="high")).message_id == "m-42"


@pytest.mark.parametrize("request_id", [None, "has space", "x" * 200, 'quote"d', 42])
def test_an_insane_request_id_is_dropped_not_fatal(request_id):
    assert parse_job(job(request_id=request_id)).request_id is None


@pytest.mark.parametrize("body", [None, ""])
def test_no_body_is_allowed(body):
    assert parse_job(job(body=body)).body is None


@pytest.mark.parametrize(
    ("raw", "names"),
    [
        (b"{not json", "not JSON"),
        (b"\xff\xfe", "not JSON"),
        (b"[1, 2]", "not a JSON object"),
        (job(type="receipt"), "type"),
        ({k: v for k, v in JOB.items() if k != "user_id"}, "user_id: is required"),
        (job(user_id="not-a-uuid"), "user_id"),
        (job(message_id=""), "message_id"),
        (job(conversation_id=123), "conversation_id"),
        (job(sent_at="yesterday"), "sent_at"),
        (job(sent_at="2026-11-25T10:00:00"), "sent_at"),  # no zone: ambiguous
        (job(body="x" * 4097), "body"),
    ],
)
def test_malformed_jobs_raise_invalid_job_naming_the_problem(raw, names):
    with pytest.raises(InvalidJob, match=names):
        parse_job(raw)


def test_invalid_job_is_a_value_error_a_consumer_can_catch_alone():
    assert issubclass(InvalidJob, ValueError)


def test_ids_only_payload_has_no_body():
    parsed = parse_job(JOB)
    assert PushPayload.from_job(parsed, ids_only=False).fields()["body"] == "the secret text"
    private = PushPayload.from_job(parsed, ids_only=True)
    assert private.body is None
    assert "body" not in private.fields()


def test_a_file_is_pushed_as_its_type_only_and_never_in_ids_only_mode():
    parsed = parse_job(job(body=None, media_type="image/jpeg"))
    fields = PushPayload.from_job(parsed, ids_only=False).fields()
    assert fields["media_type"] == "image/jpeg" and "body" not in fields
    assert "media_type" not in PushPayload.from_job(parsed, ids_only=True).fields()
    assert "media_type" not in PushPayload.from_job(parse_job(JOB), ids_only=False).fields()
    with pytest.raises(InvalidJob, match="media_type"):
        parse_job(job(media_type="not a type"))


@pytest.mark.parametrize(
    ("text", "limit", "expected"),
    [
        ("short", 10, "short"),
        ("abcdefghij", 10, "abcdefghij"),
        ("abcdefghijk", 10, "abcdefg…"),
        ("ééééé", 7, "éé…"),
    ],
)
def test_truncation_keeps_whole_characters(text, limit, expected):
    cut = truncate_utf8(text, limit)
    assert cut == expected
    assert len(cut.encode()) <= limit


def test_a_job_naming_devices_is_for_those_only_and_one_naming_none_for_all():
    devices = [Device(id=str(uuid.UUID(int=n)), platform="fcm", token=f"t{n}") for n in (1, 2, 3)]
    assert for_job(parse_job(job()), devices) == devices
    named = parse_job(job(device_ids=[str(uuid.UUID(int=3)), str(uuid.UUID(int=1))]))
    assert [d.token for d in for_job(named, devices)] == ["t1", "t3"]
    # A device removed since the job was queued is simply not pushed.
    assert for_job(parse_job(job(device_ids=[str(uuid.UUID(int=9))])), devices) == []


@pytest.mark.parametrize("device_ids", [["not-a-uuid"], [str(uuid.UUID(int=1))] * 65, "abc"])
def test_bad_device_ids_make_the_job_invalid(device_ids):
    with pytest.raises(InvalidJob):
        parse_job(job(device_ids=device_ids))
