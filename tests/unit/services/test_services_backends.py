"""One meaning of "a backend is down" (services/common/backends.py): real clients pointed at
ports nothing listens on fail as down, MongoDB's timeouts count wherever pymongo reports
them, and a fault of the input does not; message_processor retries a batch through a MongoDB
timeout instead of taking it one by one towards the dead letters."""

from __future__ import annotations

import socket
import threading
import types

import psycopg
import pymongo
import pymongo.errors
import pytest
import redis
from prometheus_client import CollectorRegistry
from real_backends import _free_port
from test_chat_units import chat_env

from services.common.amqp import PublishError
from services.common.backends import backend_down
from services.message_processor.consumer import BatchConsumer
from services.message_processor.context import ProcessorMetrics
from services.message_processor.settings import ProcessorSettings


def failure_of(call) -> BaseException:
    with pytest.raises(Exception) as caught:  # noqa: PT011 - the type is what is asserted
        call()
    return caught.value


def test_real_clients_that_reach_nothing_fail_as_a_backend_down():
    port = _free_port()
    failures = [
        failure_of(lambda: psycopg.connect(f"host=127.0.0.1 port={port} user=x connect_timeout=1")),
        failure_of(lambda: redis.Redis(port=port, socket_connect_timeout=1).ping()),
        failure_of(
            lambda: pymongo.MongoClient(
                f"mongodb://127.0.0.1:{port}/?directConnection=true", serverSelectionTimeoutMS=300
            ).admin.command("ping")
        ),
        failure_of(lambda: socket.create_connection(("127.0.0.1", port), timeout=1)),
    ]
    assert [backend_down(exc) for exc in failures] == [True] * 4, [type(e).__name__ for e in failures]
    assert backend_down(PublishError("not confirmed"))


def test_mongodb_timeouts_count_however_they_are_reported():
    assert backend_down(pymongo.errors.ExecutionTimeout("operation exceeded time limit", code=50))
    assert backend_down(pymongo.errors.BulkWriteError({"writeErrors": [{"index": 0, "code": 50}]}))
    assert backend_down(pymongo.errors.NetworkTimeout("timed out"))


def test_faults_of_the_input_or_the_code_are_not_a_backend_down():
    assert not backend_down(pymongo.errors.DuplicateKeyError("E11000", code=11000))
    assert not backend_down(pymongo.errors.BulkWriteError({"writeErrors": [{"index": 0, "code": 11000}]}))
    assert not backend_down(psycopg.errors.UniqueViolation("duplicate key"))
    assert not backend_down(ValueError("bad payload"))
    assert not backend_down(redis.ResponseError("WRONGTYPE"))


def consumer() -> BatchConsumer:
    settings = ProcessorSettings.from_env(chat_env(WHATSAPP_RETRY_MAX_DELAY_SECONDS="0.05"))
    ctx = types.SimpleNamespace(settings=settings, metrics=ProcessorMetrics.create(CollectorRegistry()))
    return BatchConsumer(ctx, threading.Event())


def test_the_processor_retries_a_batch_through_mongodb_timeouts():
    worker, calls = consumer(), []

    def store() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise pymongo.errors.ExecutionTimeout("operation exceeded time limit", code=50)
        return "stored"

    assert worker.with_backend_retry(store) == "stored"
    assert len(calls) == 3
    assert worker.ctx.metrics.backend_retries._value.get() == 2


def test_the_processor_does_not_retry_a_fault_of_the_batch():
    worker = consumer()

    def store() -> None:
        raise pymongo.errors.BulkWriteError({"writeErrors": [{"index": 0, "code": 121}]})

    with pytest.raises(pymongo.errors.BulkWriteError):
        worker.with_backend_retry(store)
    assert worker.ctx.metrics.backend_retries._value.get() == 0
