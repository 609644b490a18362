"""A queue worker's own process (services/common/process.py): `python -m
services.message_processor` (and notification) answers /health beside its consumers, which
keep trying unreachable backends, and ends with status 0 soon after SIGTERM; a worker thread
that dies ends the process with 1, so the container restarts."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from flask import Flask
from real_backends import _free_port
from test_chat_units import chat_env

from services.common.process import serve

ROOT = Path(__file__).resolve().parents[3]


def get(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=2) as answer:  # noqa: S310 - 127.0.0.1 only
            return answer.status
    except urllib.error.HTTPError as error:
        return error.code


@pytest.mark.parametrize("service", ["message_processor", "notification"])
def test_the_process_answers_its_probes_and_stops_on_sigterm(service):
    port = _free_port()
    env = {**os.environ, **chat_env(WHATSAPP_LOG_LEVEL="INFO"), "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen(
        [sys.executable, "-m", f"services.{service}", f"--port={port}"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        status = None
        while status != 200:
            assert process.poll() is None, process.communicate()[0][-2000:]
            assert time.monotonic() < deadline, "no /health answer within 30 s"
            try:
                status = get(f"http://127.0.0.1:{port}/health")
            except OSError:
                time.sleep(0.2)
        # Its backends are unreachable: alive, not ready.
        assert get(f"http://127.0.0.1:{port}/ready") == 503
        stopped = time.monotonic()
        process.send_signal(signal.SIGTERM)
        output = process.communicate(timeout=20)[0]
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, output[-2000:]
    assert time.monotonic() - stopped < 15
    assert "SIGTERM: stopping the workers" in output


def test_a_worker_thread_that_ends_ends_the_process_with_1():
    app = Flask("probe")
    previous = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)

    def start(stopping):
        thread = threading.Thread(target=lambda: None, name="short-lived")
        thread.start()
        return [thread]

    try:
        assert serve(app, _free_port(), start, stop_seconds=1) == 1
    finally:
        signal.signal(signal.SIGTERM, previous[0])
        signal.signal(signal.SIGINT, previous[1])
