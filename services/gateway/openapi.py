"""GET /api/v1/openapi.json: docs/api/openapi.yaml (the public contract), served as JSON.

The YAML is read and converted once, at start-up: a missing or broken document stops the
gateway with a message naming WHATSAPP_OPENAPI_PATH instead of failing requests later.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml
from flask import Blueprint, Flask, Response, current_app

from services.common.config import SettingsError, env_name
from services.gateway.routing import API_PREFIX

EXTENSION = "whatsapp_gateway_openapi"
# libyaml's safe loader when PyYAML was built with it: ~20 times faster on this document.
SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

bp = Blueprint("openapi", __name__)


def load_openapi(path: Path) -> dict[str, Any]:
    """The document as JSON-compatible data, or SettingsError naming the variable."""
    variable = env_name("openapi_path")
    try:
        document = yaml.load(path.read_text(encoding="utf-8"), Loader=SAFE_LOADER)  # noqa: S506 (safe)
    except OSError as exc:
        raise SettingsError(f"{variable} names a file that cannot be read: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise SettingsError(f"{variable} names a file that is not valid YAML: {exc}") from None
    if not isinstance(document, dict) or "openapi" not in document:
        raise SettingsError(f"{variable} names a file that is not an OpenAPI document")
    return document


def load_openapi_json(path: Path) -> bytes:
    try:
        # No default=str: a YAML value JSON cannot hold (an unquoted date) is a bug to fix there.
        return json.dumps(load_openapi(path), ensure_ascii=False).encode("utf-8")
    except TypeError as exc:
        raise SettingsError(
            f"{env_name('openapi_path')} holds a value JSON cannot represent: {exc}"
        ) from None


def init_openapi(app: Flask, path: Path) -> None:
    app.extensions[EXTENSION] = load_openapi_json(path)


@bp.get(f"{API_PREFIX}/openapi.json")
def openapi_json() -> Response:
    response = Response(current_app.extensions[EXTENSION], mimetype="application/json")
    response.headers["Cache-Control"] = "public, max-age=300"
    return response
