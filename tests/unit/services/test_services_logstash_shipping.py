"""Log shipping to Logstash (python-logstash-async) against a real TCP listener on 127.0.0.1.

A record logged through the services' own setup arrives as one JSON line carrying the service
and the request id; with nothing listening, logging neither raises nor blocks.
"""

from __future__ import annotations

import json
import logging
import socket
import socketserver
import threading
import time
from pathlib import Path

import pytest
from service_helpers import user_settings

from services.common.logging import configure_logging
from services.common.request_id import current_request_id


class _LineCollector(socketserver.StreamRequestHandler):
    def handle(self) -> None:
        for raw in self.rfile:
            self.server.lines.append(raw.decode().rstrip("\n"))  # type: ignore[attr-defined]
            self.server.arrived.set()  # type: ignore[attr-defined]


class FakeLogstash(socketserver.ThreadingTCPServer):
    """A real TCP server on a free loopback port that keeps every line it receives."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _LineCollector)
        self.lines: list[str] = []
        self.arrived = threading.Event()


@pytest.fixture
def restore_root_logger():
    root = logging.getLogger()
    saved, level = root.handlers[:], root.level
    yield root
    for handler in root.handlers[:]:
        if handler not in saved:
            root.removeHandler(handler)
            handler.close()
    root.handlers[:] = saved
    root.setLevel(level)


def shipping_settings(port: int, queue: Path):
    return user_settings(
        WHATSAPP_LOGSTASH_HOST="127.0.0.1",
        WHATSAPP_LOGSTASH_PORT=str(port),
        WHATSAPP_LOGSTASH_QUEUE_PATH=str(queue),
    )


def test_a_record_arrives_as_json_with_service_and_request_id(tmp_path, restore_root_logger):
    server = FakeLogstash()
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        configure_logging(shipping_settings(server.server_address[1], tmp_path / "queue.db"), "chat")
        token = current_request_id.set("req-shipped-1")
        try:
            logging.getLogger("services.chat").warning("shipped to logstash", extra={"seq": 3})
        finally:
            current_request_id.reset(token)
        # The shipper flushes in the background (every few seconds by default).
        deadline = time.monotonic() + 20
        event = None
        while time.monotonic() < deadline and event is None:
            server.arrived.wait(0.5)
            for line in list(server.lines):
                parsed = json.loads(line)
                if parsed.get("message") == "shipped to logstash":
                    event = parsed
        assert event is not None, f"nothing arrived; got {server.lines!r}"
        assert event["service"] == "chat"
        assert event["request_id"] == "req-shipped-1"
        assert event["level"] == "WARNING"
        assert event["seq"] == 3
    finally:
        server.shutdown()
        server.server_close()


def test_nothing_listening_neither_raises_nor_blocks(tmp_path, restore_root_logger):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    configure_logging(shipping_settings(port, tmp_path / "queue.db"), "chat")
    log = logging.getLogger("services.chat")
    started = time.monotonic()
    for number in range(300):
        log.info("logstash is down", extra={"n": number})
    elapsed = time.monotonic() - started
    # Loosely timed: 300 records with the shipper failing behind them, far below a second.
    assert elapsed < 1.0, elapsed


def test_shipping_is_off_when_no_host_is_set(restore_root_logger):
    configure_logging(user_settings(WHATSAPP_LOGSTASH_HOST=""), "chat")
    kinds = {type(h).__name__ for h in logging.getLogger().handlers}
    assert "AsynchronousLogstashHandler" not in kinds
