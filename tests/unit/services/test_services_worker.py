"""The queue workers' base (services/common/worker.py) on kombu's in-process broker (its
`memory://` transport: the unit layer has no RabbitMQ; the end-to-end and reliability layers
run both workers against the deployed one): batches fill up to their size, every delivery is
settled once, a backend that is down is waited out without a requeue, a fault is left to the
subclass, and a stop ends the loop with a waiting batch left unacknowledged."""

from __future__ import annotations

import threading
import time
import types
import uuid

import kombu
import psycopg
import pytest

from services.common.worker import Consuming, QueueWorker, Stopping, start_workers


def settings() -> types.SimpleNamespace:
    return types.SimpleNamespace(
        rabbitmq_url="memory://", backend_timeout_seconds=1.0, retry_max_delay_seconds=0.1
    )


def publish(queue_name: str, count: int) -> None:
    queue = kombu.Queue(queue_name, kombu.Exchange(queue_name), routing_key=queue_name)
    with kombu.Connection("memory://") as conn:
        producer = conn.Producer()
        for number in range(count):
            producer.publish({"n": number}, exchange=queue.exchange, routing_key=queue_name, declare=[queue])


def remaining(queue_name: str) -> int:
    with kombu.Connection("memory://") as conn:
        return conn.SimpleQueue(queue_name).qsize()


class Recorder(QueueWorker):
    """Acks what it handles, after `work` (which may fail) for each batch."""

    def __init__(self, queue: str, batch_size: int, work=None):
        super().__init__(
            types.SimpleNamespace(settings=settings()),
            threading.Event(),
            "recorder",
            Consuming(queue, prefetch=50, batch_size=batch_size, batch_wait_ms=50),
        )
        self.batches: list[list[int]] = []
        self.work = work or (lambda: None)
        self.retries = 0
        self.gave_up: list[int] = []

    def handle(self, batch):
        try:
            self.with_backend_retry(self.work)
        except Stopping:
            self.gave_up = [d.payload["n"] for d in batch]
            return
        self.batches.append([d.payload["n"] for d in batch])
        for delivery in batch:
            delivery.ack()

    def on_retry(self):
        self.retries += 1


def run_until(worker: QueueWorker, done, seconds: float = 10.0) -> None:
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + seconds
    while not done():
        assert time.monotonic() < deadline, "the worker did not get there in time"
        time.sleep(0.02)
    worker.stopping.set()
    thread.join(5)
    assert not thread.is_alive(), "the worker did not stop"


def test_deliveries_are_handled_in_batches_of_at_most_the_size_each_once():
    queue = f"unit-{uuid.uuid4().hex[:8]}"
    publish(queue, 7)
    worker = Recorder(queue, batch_size=3)
    run_until(worker, lambda: sum(map(len, worker.batches)) == 7)
    assert sorted(n for batch in worker.batches for n in batch) == list(range(7))
    assert max(map(len, worker.batches)) <= 3
    assert remaining(queue) == 0


def test_a_backend_that_is_down_is_waited_out_and_the_batch_handled_once():
    queue = f"unit-{uuid.uuid4().hex[:8]}"
    publish(queue, 2)
    failures = iter([psycopg.OperationalError("server closed the connection")] * 3)

    def work():
        failure = next(failures, None)
        if failure:
            raise failure

    worker = Recorder(queue, batch_size=10, work=work)
    run_until(worker, lambda: sum(map(len, worker.batches)) == 2)
    assert worker.retries == 3
    assert sorted(n for batch in worker.batches for n in batch) == [0, 1]


def test_a_fault_is_the_subclass_s_to_handle():
    class Faulty(QueueWorker):
        def handle(self, batch):
            with pytest.raises(ValueError, match="bad"):
                self.with_backend_retry(lambda: (_ for _ in ()).throw(ValueError("bad")))
            for delivery in batch:
                delivery.reject(requeue=False)
            self.stopping.set()

    queue = f"unit-{uuid.uuid4().hex[:8]}"
    publish(queue, 1)
    worker = Faulty(
        types.SimpleNamespace(settings=settings()), threading.Event(), "faulty", Consuming(queue, 5)
    )
    run_until(worker, worker.stopping.is_set)
    assert remaining(queue) == 0


def test_a_stop_while_a_batch_waits_for_a_backend_leaves_it_unacknowledged():
    queue = f"unit-{uuid.uuid4().hex[:8]}"
    publish(queue, 2)

    def down():
        raise psycopg.OperationalError("still down")

    worker = Recorder(queue, batch_size=10, work=down)
    run_until(worker, lambda: worker.retries >= 2)
    time.sleep(0.3)
    assert worker.batches == []
    assert sorted(worker.gave_up) == [0, 1]


def test_start_workers_numbers_them_and_runs_each_in_its_thread():
    stopping = threading.Event()
    queue = f"unit-{uuid.uuid4().hex[:8]}"
    publish(queue, 0)
    names = []

    def make(number):
        worker = Recorder(queue, batch_size=1)
        worker.name, worker.stopping = f"w-{number}", stopping
        names.append(worker.name)
        return worker

    threads = start_workers(3, make, stopping)
    assert names == ["w-1", "w-2", "w-3"]
    assert all(t.is_alive() for t in threads)
    stopping.set()
    for thread in threads:
        thread.join(5)
    assert not any(t.is_alive() for t in threads)
