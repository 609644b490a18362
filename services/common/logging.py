"""JSON-lines logs on stdout, optionally shipped to Logstash without blocking requests.

Each line: `time` (RFC 3339 UTC), `level`, `service`, `request_id`, `logger`, `message`,
then any `extra={...}` fields and `exception` (the traceback) when there is one.

Logstash shipping (python-logstash-async) hands each event to a background thread that
keeps it in an on-disk SQLite queue until Logstash takes it, so a Logstash outage costs
neither latency nor failed requests; events older than an hour are dropped from the queue.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from logstash_async.constants import constants
from logstash_async.handler import AsynchronousLogstashHandler

from services.common.config import BaseSettings
from services.common.request_id import current_request_id
from services.common.times import rfc3339

# Attributes every LogRecord has; everything else on a record came from `extra=`.
_RECORD_ATTRIBUTES = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {
    "message",
    "asctime",
    "service",
    "request_id",
}
# Marks the handlers this module installed, so configuring twice replaces, never duplicates.
_OURS = "_whatsapp_handler"
# The shipper's own complaints ("cannot reach Logstash") must not be queued for Logstash.
_SHIPPER_LOGGERS = ("LogProcessingWorker", "logstash_async")
LOGSTASH_EVENT_TTL_SECONDS = 3600


class ContextFilter(logging.Filter):
    """Stamps the service name and the current request id on every record."""

    def __init__(self, service: str):
        super().__init__()
        self.service = service

    def filter(self, record: logging.LogRecord) -> bool:
        record.service = self.service
        if getattr(record, "request_id", None) is None:
            record.request_id = current_request_id.get()
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": rfc3339(record.created),
            "level": record.levelname,
            "service": getattr(record, "service", None),
            "request_id": getattr(record, "request_id", None),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _RECORD_ATTRIBUTES and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exception"] = record.exc_text
        return json.dumps(entry, default=str, ensure_ascii=False)


def _not_from_shipper(record: logging.LogRecord) -> bool:
    return not record.name.startswith(_SHIPPER_LOGGERS)


def logstash_queue_path(settings: BaseSettings, service: str) -> str:
    if settings.logstash_queue_path:
        return settings.logstash_queue_path
    # One queue per process: gunicorn workers must not share (and double-send) one file.
    return str(Path(tempfile.gettempdir()) / f"whatsapp-{service}-{os.getpid()}-logstash.db")


def build_logstash_handler(settings: BaseSettings, service: str) -> logging.Handler | None:
    """The Logstash handler, or None when no Logstash host is configured."""
    if not settings.logstash_host:
        return None
    # While Logstash is down the shipper would print one error per flush; a few a minute do.
    constants.ERROR_LOG_RATE_LIMIT = "5 per minute"
    # Measured with python-logstash-async 4.1: after a refused connection it waits the whole
    # close timeout (30 s by default) for a send buffer that never drains, stalling the
    # shipper and making every process exit wait 30 s. A batch drains in far less than 2 s.
    constants.SOCKET_CLOSE_WAIT_TIMEOUT = 2.0
    constants.SOCKET_TIMEOUT = 3.0
    handler = AsynchronousLogstashHandler(
        settings.logstash_host,
        settings.logstash_port,
        database_path=logstash_queue_path(settings, service),
        event_ttl=LOGSTASH_EVENT_TTL_SECONDS,
    )
    handler.setFormatter(JsonFormatter())
    handler.addFilter(_not_from_shipper)
    return handler


def configure_logging(settings: BaseSettings, service: str | None = None) -> None:
    """Route the root logger to stdout as JSON (and to Logstash when configured)."""
    service = service or settings.service_name
    root = logging.getLogger()
    for handler in [h for h in root.handlers if getattr(h, _OURS, False)]:
        root.removeHandler(handler)
        handler.close()
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stdout)]
    handlers[0].setFormatter(JsonFormatter())
    shipper = build_logstash_handler(settings, service)
    if shipper is not None:
        handlers.append(shipper)
    context = ContextFilter(service)
    for handler in handlers:
        # A filter on the handler (not the logger) also sees records of child loggers.
        handler.addFilter(context)
        setattr(handler, _OURS, True)
        root.addHandler(handler)
    root.setLevel(settings.log_level)
