"""services/common/devmode.py: development mode's entry point keeps the worker alive when the
code fails to load, and points gunicorn's reloader at the failing files."""

from __future__ import annotations

import json
import sys
import types

from services.common import devmode


def call(app) -> tuple[str, dict]:
    seen = {}

    def start_response(status, headers):
        seen["status"], seen["headers"] = status, dict(headers)

    body = b"".join(app({"REQUEST_METHOD": "GET", "PATH_INFO": "/ready"}, start_response))
    assert seen["headers"]["Content-Length"] == str(len(body))
    return seen["status"], json.loads(body)


def test_a_service_that_fails_to_load_answers_500_in_the_contracts_shape():
    app = devmode.create_app("no_such_service")
    status, body = call(app)
    assert status.startswith("500 ")
    assert body["error"]["code"] == "internal_error"
    assert "services.no_such_service failed to load" in body["error"]["message"]
    assert "ModuleNotFoundError" in body["error"]["message"]


def test_the_failing_service_files_are_watched_by_the_reloader():
    devmode.create_app("no_such_service")
    watched = {
        getattr(m, "__file__", None) for name, m in sys.modules.items() if name.startswith("_devmode_watch_")
    }
    assert "/app/services/no_such_service/__init__.py" in watched


def test_a_service_that_loads_is_returned_as_is(monkeypatch):
    sentinel = object()
    module = types.ModuleType("services.loads_fine")
    module.create_app = lambda: sentinel
    monkeypatch.setitem(sys.modules, "services.loads_fine", module)
    assert devmode.create_app("loads_fine") is sentinel
