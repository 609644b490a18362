"""A queue worker's process: the workers in threads, /health, /ready and /metrics beside them.

message_processor and notification run as their own process (`python -m services.<name>`),
not inside a WSGI server's worker: the process is the container's PID 1, its workers
(services/common/worker.py) are started once, and SIGTERM (`docker stop`, a Swarm update)
stops them gracefully: each finishes or gives up the batch in hand, leaving what it did not
settle unacknowledged for the broker to deliver again, within `stop_seconds`. The service's
Flask app (built with `background=False`) answers the probes and Prometheus on `port` from a
small threaded server; a worker thread that dies ends the process, so the container restarts
instead of looking healthy while consuming nothing.
"""

from __future__ import annotations

import argparse
import logging
import signal
import threading
from collections.abc import Callable
from typing import Any

from flask import Flask
from werkzeug.serving import make_server

log = logging.getLogger(__name__)

StartWorkers = Callable[[threading.Event], list[threading.Thread]]


def worker_main(
    service: str,
    create_app: Callable[..., Flask],
    context_of: Callable[[Flask], Any],
    start_consumers: Callable[[Any, threading.Event], list[threading.Thread]],
    argv: list[str] | None = None,
) -> int:
    """`python -m services.<service> --port N`: the app built without its background
    workers, then `serve` with its consumers started on the app's context."""
    parser = argparse.ArgumentParser(prog=f"python -m services.{service}")
    parser.add_argument("--port", type=int, required=True, help="where /health, /ready and /metrics answer")
    args = parser.parse_args(argv)
    app = create_app(background=False)
    ctx = context_of(app)
    return serve(app, args.port, lambda stopping: start_consumers(ctx, stopping))


def serve(app: Flask, port: int, start_workers: StartWorkers, *, stop_seconds: float = 15.0) -> int:
    """Run until SIGTERM or SIGINT (or a worker thread ends); the process's exit status."""
    stopping = threading.Event()

    def stop(signum: int, _frame: object) -> None:
        log.info("%s: stopping the workers", signal.Signals(signum).name)
        stopping.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    # Probes and scrapes every few seconds: the app's own access log covers them at DEBUG.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    server = make_server("0.0.0.0", port, app, threaded=True)  # noqa: S104 - the container's port
    http = threading.Thread(target=server.serve_forever, name="http", daemon=True)
    http.start()
    workers = start_workers(stopping)
    log.info("serving /health, /ready and /metrics on %d beside %d workers", port, len(workers))
    status = 0
    while not stopping.wait(1.0):
        if not all(thread.is_alive() for thread in workers):
            log.error("a worker thread ended: exiting so that the container restarts")
            stopping.set()
            status = 1
    for thread in workers:
        thread.join(timeout=stop_seconds)
    server.shutdown()
    left = [thread.name for thread in workers if thread.is_alive()]
    if left:
        log.warning("workers still busy after %.0f s: %s", stop_seconds, ", ".join(left))
    return status
