"""Development mode's WSGI entry point: gunicorn --reload 'services.common.devmode:create_app("user")'.

In development mode a save can leave the code broken for a moment (an editor that truncates
the file before writing it, a typo). Gunicorn stops its master when the application fails to
load with anything but a SyntaxError, and the container would restart in a loop. Here the
worker keeps running instead: it answers every request with 500 in the contract's shape,
naming the error, and gunicorn's reloader watches the files of the traceback, so the next
save loads the fixed code.
"""

from __future__ import annotations

import importlib
import json
import logging
import sys
import traceback
import types
from collections.abc import Callable, Iterable
from typing import Any

log = logging.getLogger(__name__)

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def create_app(service: str) -> WsgiApp:
    try:
        return importlib.import_module(f"services.{service}").create_app()
    except Exception as error:  # noqa: BLE001 (any load error: the worker must keep running)
        log.exception("development mode: services.%s failed to load; waiting for the next save", service)
        _watch(_files_of(error) + [f"/app/services/{service}/__init__.py"])
        return _failed_app(f"development mode: services.{service} failed to load: {error!r}")


def _files_of(error: BaseException) -> list[str]:
    files = [frame.filename for frame in traceback.extract_tb(error.__traceback__)]
    if isinstance(error, SyntaxError) and error.filename:
        files.append(error.filename)
    return [name for name in files if name.startswith("/app/services/")]


def _watch(files: list[str]) -> None:
    """Gunicorn's polling reloader watches the file of every module in sys.modules: a module
    that failed to import is not there, so a stand-in module carries its file name."""
    for number, name in enumerate(dict.fromkeys(files)):
        stand_in = types.ModuleType(f"_devmode_watch_{number}")
        stand_in.__file__ = name
        sys.modules[stand_in.__name__] = stand_in


def _failed_app(message: str) -> WsgiApp:
    body = json.dumps({"error": {"code": "internal_error", "message": message}}).encode()

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:  # noqa: ARG001
        start_response(
            "500 Internal Server Error",
            [("Content-Type", "application/json"), ("Content-Length", str(len(body)))],
        )
        return [body]

    return app
