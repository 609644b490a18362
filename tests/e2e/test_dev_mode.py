"""Layer 4, end to end: development mode (-e whatsapp_dev_mode=true) on the deployed stack.

The user service is switched to development mode with the README's deploy command and a
tag: it must run this checkout's services/ (mounted read-only) under gunicorn --reload at
DEBUG; a code change must reload the worker without a new image or a new container, and a
deploy after the change must change nothing. The service is switched back at the end."""

from __future__ import annotations

import json
import subprocess
import time
import urllib.error
import urllib.request

import pytest
from conftest import ROOT, TEST_INVENTORY, recap, run, tail

pytestmark = pytest.mark.docker

CONTAINER = "whatsapp-user"
PROBE_FILE = ROOT / "services" / "user" / "__init__.py"


def deploy(*extra: str, log: str):
    return run(
        [str(ROOT / "scripts/deploy.sh"), "-i", TEST_INVENTORY, "--tags", "user", *extra],
        log=log,
        timeout=900,
    )


def inspect() -> dict:
    return json.loads(subprocess.check_output(["docker", "inspect", CONTAINER]))[0]


@pytest.fixture(scope="module")
def dev_mode(deployed_stack):
    assert deployed_stack[0].returncode == 0, "the deploy failed: see the deploy test"
    result = deploy("-e", "whatsapp_dev_mode=true", log="dev-mode-on.log")
    assert result.returncode == 0, tail(result)
    yield result
    back = deploy(log="dev-mode-off.log")
    assert back.returncode == 0, tail(back)
    container = inspect()
    assert "--reload" not in container["Config"]["Cmd"], "the user service stayed in development mode"
    assert not [m for m in container["Mounts"] if m["Destination"] == "/app/services"]


def test_dev_mode_runs_the_checkout_with_reload_and_debug_logging(dev_mode):
    container = inspect()
    mounts = {m["Destination"]: m for m in container["Mounts"]}
    assert mounts["/app/services"]["Source"] == str(ROOT / "services")
    assert mounts["/app/services"]["RW"] is False
    assert container["Config"]["Cmd"][:2] == ["gunicorn", "--reload"]
    assert container["Config"]["Cmd"][-1] == "services.common.devmode:create_app('user')"
    assert "WHATSAPP_LOG_LEVEL=DEBUG" in container["Config"]["Env"]
    assert container["Config"]["Image"].startswith("whatsapp/service:dev-")
    assert container["Config"]["Labels"]["com.whatsapp.dev-mode"] == "true"


def reload_count(before: dict) -> int:
    """How many reloads for its __init__.py the user service's workers logged so far."""
    logs = subprocess.run(
        ["docker", "logs", "--since", before["State"]["StartedAt"], CONTAINER],
        capture_output=True,
        text=True,
        check=True,
    ).stderr
    return logs.count("Worker reloading: /app/services/user/__init__.py modified")


def save_and_wait_for_the_reload(before: dict, content: str) -> None:
    """Write the file, then wait (up to 60 s) for one more reload. Gunicorn's polling reloader
    takes a file's time when it first sees it, after the worker has loaded the app: a save
    while a new worker is still loading (seconds on a busy machine) goes unseen, as it would
    for a developer, who saves again. So does this: the same content every 5 s."""
    count = reload_count(before)
    PROBE_FILE.write_text(content)
    saved = start = time.monotonic()
    while time.monotonic() - start < 60:
        if reload_count(before) > count:
            return
        if time.monotonic() - saved >= 5:
            PROBE_FILE.write_text(content)
            saved = time.monotonic()
        time.sleep(1)
    logs = subprocess.run(
        ["docker", "logs", "--tail", "30", CONTAINER], check=False, capture_output=True, text=True
    ).stderr
    raise AssertionError(f"no reload after saving {PROBE_FILE} (reloads before: {count}):\n{logs}")


def ready_status() -> tuple[int, dict]:
    try:
        with urllib.request.urlopen("http://127.0.0.1:8081/ready", timeout=3) as response:  # noqa: S310
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")
    except (OSError, ValueError):
        return 0, {}


def wait_ready_status(wanted: int) -> tuple[int, dict]:
    deadline = time.monotonic() + 30
    status, body = ready_status()
    while status != wanted and time.monotonic() < deadline:
        time.sleep(1)
        status, body = ready_status()
    return status, body


def test_a_code_change_reloads_without_a_new_image_or_container(dev_mode):
    """A change reloads the worker; a save that breaks the code answers 500 naming the error
    and keeps the container running; the next save loads the fixed code; a deploy after the
    change changes nothing. The same container and image throughout, never restarted."""
    before = inspect()
    original = PROBE_FILE.read_text()
    changed_code = original + "# development mode probe: this line is removed by the test\n"
    try:
        save_and_wait_for_the_reload(before, changed_code)
        assert wait_ready_status(200)[0] == 200, "the reloaded user service does not answer /ready"

        broken = changed_code + "raise RuntimeError('development mode probe: broken on purpose')\n"
        save_and_wait_for_the_reload(before, broken)
        status, body = wait_ready_status(500)
        assert status == 500, (status, body)
        assert body["error"]["code"] == "internal_error"
        assert "broken on purpose" in body["error"]["message"], body
        assert inspect()["State"]["Running"]

        save_and_wait_for_the_reload(before, changed_code)
        assert wait_ready_status(200)[0] == 200, "the fixed code was not loaded"

        again = deploy("-e", "whatsapp_dev_mode=true", log="dev-mode-again.log")
        assert again.returncode == 0, tail(again)
        changed = recap(again.stdout)["localhost"]["changed"]
        assert changed == 0, "a code change in development mode changed the deploy"
    finally:
        PROBE_FILE.write_text(original)
    after = inspect()
    assert after["Id"] == before["Id"], "the container was re-created"
    assert after["Image"] == before["Image"], "a new image was built"
    assert after["RestartCount"] == 0


def test_dev_mode_is_refused_outside_development():
    result = run(
        [
            "ansible-playbook",
            "-i",
            TEST_INVENTORY,
            "playbooks/validate.yml",
            "-e",
            "whatsapp_dev_mode=true",
            "-e",
            "whatsapp_environment=staging",
        ],
        log="dev-mode-refused.log",
    )
    assert result.returncode != 0
    assert "whatsapp_dev_mode must be true or false" in result.stdout, tail(result)
