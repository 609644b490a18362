"""The Logstash pipeline parses what the stack really logs.

Logstash itself cannot run here (no registry), so its rules are applied in Python: the
multiline pattern and the grok pattern are read from the rendered pipeline and translated
(grok's standard INT, WORD and GREEDYDATA are copied from logstash-patterns-core); the
services' lines come from their own logging setup, gunicorn's from gunicorn's own format,
nginx's from the log_format of roles/nginx/templates/nginx.conf.j2.
"""

from __future__ import annotations

import io
import json
import logging
import re
import sys
from datetime import datetime

import gunicorn.glogging
import pytest
from observability_helpers import ROOT, rendered

sys.path.insert(0, str(ROOT / "tests" / "unit" / "services"))
from service_helpers import user_settings  # noqa: E402

from services.common.logging import configure_logging  # noqa: E402
from services.common.request_id import current_request_id  # noqa: E402

# logstash-patterns-core (grok-patterns) definitions of the standard patterns the pipeline uses.
GROK_STANDARD = {"INT": r"(?:[+-]?(?:[0-9]+))", "WORD": r"\b\w+\b", "GREEDYDATA": r".*"}
# The date filter's "yyyy-MM-dd HH:mm:ss Z" (Joda) in strptime's words.
JODA_TO_STRPTIME = {"yyyy-MM-dd HH:mm:ss Z": "%Y-%m-%d %H:%M:%S %z"}
ISO8601_CONDITION = re.compile(r"^\d{4}-\d{2}-\d{2}T")


def pipeline() -> str:
    return (rendered() / "logstash-whatsapp.conf").read_text()


def multiline_pattern() -> re.Pattern[str]:
    (pattern,) = re.findall(r'multiline \{\s*pattern => "([^"]+)"', pipeline())
    return re.compile(pattern)


def grok_regex() -> re.Pattern[str]:
    text = pipeline()
    definitions = dict(re.findall(r'pattern_definitions => \{ "(\w+)" => "([^"]+)" \}', text))
    (match,) = re.findall(r'match => \{ "message" => "([^"]+)" \}', text)

    def expand(m: re.Match[str]) -> str:
        name, field = m.group(1), m.group(2)
        body = definitions.get(name) or GROK_STANDARD[name]
        return f"(?P<{field}>{body})" if field else f"(?:{body})"

    return re.compile(re.sub(r"%\{(\w+)(?::(\w+))?\}", expand, match))


def join_multiline(lines: list[str]) -> list[str]:
    """The multiline codec with what => previous: a matching line belongs to the one before."""
    pattern, events = multiline_pattern(), []
    for line in lines:
        if events and pattern.search(line):
            events[-1] += "\n" + line
        else:
            events.append(line)
    return events


@pytest.fixture
def service_log_lines():
    """Real lines from the services' logging setup (stdout handler), for service `chat`."""
    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    stream = io.StringIO()
    try:
        configure_logging(user_settings(), "chat")
        ours = [h for h in root.handlers if h not in saved_handlers]
        for handler in ours:
            handler.setStream(stream)
        token = current_request_id.set("req-logstash-1")
        try:
            logging.getLogger("services.chat").info("message accepted", extra={"seq": 7})
            try:
                raise ValueError("a bad frame")
            except ValueError:
                logging.getLogger("services.chat").exception("frame rejected")
        finally:
            current_request_id.reset(token)
    finally:
        for handler in root.handlers[:]:
            if handler not in saved_handlers:
                root.removeHandler(handler)
        root.handlers[:] = saved_handlers
        root.setLevel(saved_level)
    return stream.getvalue().splitlines()


def test_service_lines_are_single_json_objects_the_json_codec_takes(service_log_lines):
    assert len(service_log_lines) == 2
    for line in service_log_lines:
        assert line.startswith("{") and "\n" not in line
        event = json.loads(line)
        assert event["service"] == "chat"
        assert event["request_id"] == "req-logstash-1"
        assert event["level"] in ("INFO", "ERROR")
        # The pipeline's date filter runs on `time` when it looks like ISO 8601.
        assert ISO8601_CONDITION.match(event["time"])
        datetime.fromisoformat(event["time"].replace("Z", "+00:00"))


def test_a_service_traceback_stays_inside_its_json_line(service_log_lines):
    event = json.loads(service_log_lines[1])
    assert "Traceback (most recent call last)" in event["exception"]
    assert "ValueError: a bad frame" in event["exception"]
    assert event["message"] == "frame rejected"


def test_service_lines_posted_as_text_are_never_joined(service_log_lines):
    # Through the HTTP input's text codec, each JSON line must stay its own event.
    assert join_multiline(service_log_lines) == service_log_lines
    assert all(re.match(r"^\s*\{", line) for line in service_log_lines)


def gunicorn_lines() -> list[str]:
    formatter = logging.Formatter(gunicorn.glogging.Logger.error_fmt, gunicorn.glogging.Logger.datefmt)
    try:
        raise RuntimeError("worker failed to boot")
    except RuntimeError:
        record = logging.LogRecord(
            "gunicorn.error", logging.ERROR, __file__, 1, "Exception in worker process", (), None
        )
        record.exc_info = sys.exc_info()
    booting = logging.LogRecord(
        "gunicorn.error", logging.INFO, __file__, 1, "Booting worker with pid: 8", (), None
    )
    return formatter.format(booting).splitlines() + formatter.format(record).splitlines()


def test_a_gunicorn_stack_trace_is_joined_into_one_event():
    lines = gunicorn_lines()
    assert len(lines) > 4  # the traceback spans several lines
    events = join_multiline(lines)
    assert len(events) == 2
    assert events[0].endswith("Booting worker with pid: 8")
    assert "Traceback (most recent call last):" in events[1]
    assert events[1].endswith("RuntimeError: worker failed to boot")


def test_gunicorn_lines_are_parsed_by_the_grok_pattern():
    grok = grok_regex()
    for event, level in zip(join_multiline(gunicorn_lines()), ("INFO", "ERROR"), strict=True):
        match = grok.match(event)
        assert match, event
        assert match["level"] == level
        assert match["pid"].isdigit()
        datetime.strptime(match["time"], JODA_TO_STRPTIME["yyyy-MM-dd HH:mm:ss Z"])
    assert grok_regex().match("plain text that is not gunicorn's") is None


def nginx_access_line(**values: str) -> str:
    """One access line as nginx writes it with log_format whatsapp_json (escape=json)."""
    conf = (ROOT / "roles" / "nginx" / "templates" / "nginx.conf.j2").read_text()
    block = re.search(r"log_format whatsapp_json escape=json (.*?);\n", conf, re.S).group(1)
    fmt = "".join(re.findall(r"'([^']*)'", block))
    return re.sub(r"\$(\w+)", lambda m: json.dumps(values[m.group(1)])[1:-1], fmt)


NGINX_VALUES = {
    "time_iso8601": "2026-11-25T20:05:00+00:00",
    "remote_addr": "172.31.250.1",
    "whatsapp_request_id": "0123456789abcdef0123456789abcdef",
    "request_method": "POST",
    "whatsapp_logged_uri": '/api/v1/auth/login?x="y"',
    "status": "429",
    "body_bytes_sent": "57",
    "request_time": "0.004",
    "upstream_addr": "",
    "upstream_response_time": "",
    "http_user_agent": 'curl/8.0 "quoted"',
}


def test_nginx_access_line_is_parsed_as_an_access_event():
    line = nginx_access_line(**NGINX_VALUES)
    assert join_multiline([line]) == [line]
    event = json.loads(line)
    # The pipeline's access branch: service nginx with a status.
    assert event["service"] == "nginx" and event["status"] == 429
    assert 'if [service] == "nginx" and [status]' in pipeline()
    assert event["request_id"] == NGINX_VALUES["whatsapp_request_id"]
    assert event["uri"] == NGINX_VALUES["whatsapp_logged_uri"]
    assert isinstance(event["duration"], float) and isinstance(event["bytes"], int)
    # Empty upstream fields (nginx answered itself) are removed by the pipeline.
    assert event["upstream"] == "" and event["upstream_duration"] == ""
    assert 'if [upstream] == "" or [upstream] == "-"' in pipeline()
    datetime.fromisoformat(event["time"])


def test_pipeline_tags_every_event_with_its_service():
    text = pipeline()
    assert 'add_tag => [ "service:%{service}" ]' in text
    assert 'add_field => { "service" => "unknown" }' in text
