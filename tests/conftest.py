"""Shared fixtures and the per-layer timing table printed before pytest's summary."""

from __future__ import annotations

import functools
import json
import os
import re
import secrets
import subprocess
import tempfile
import time
import urllib.parse
from collections import defaultdict
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(os.environ.get("WHATSAPP_VENV", ROOT / ".venv")) / "bin"
# The inventory the tests deploy with: build mode, no registry, development secrets.
TEST_INVENTORY = os.environ.get("WHATSAPP_TEST_INVENTORY", str(ROOT / "inventories" / "airgapped"))
LOG_DIR = ROOT / ".test-logs"
RECAP = re.compile(r"^(\S+)\s+:\s+ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", re.M)

_layer_seconds: dict[str, float] = defaultdict(float)
_layer_counts: dict[str, int] = defaultdict(int)
_slow_tests: dict[str, float] = {}


def tool_env() -> dict[str, str]:
    """Environment for the project's tools: the venv first on PATH, the project's ansible.cfg."""
    env = dict(os.environ)
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
    env["ANSIBLE_CONFIG"] = str(ROOT / "ansible.cfg")
    env.setdefault("ANSIBLE_FORCE_COLOR", "0")
    env["ANSIBLE_NOCOLOR"] = "1"
    return env


def run(
    cmd: list[str],
    *,
    timeout: float = 900,
    cwd: Path = ROOT,
    log: str | None = None,
    extra_env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run a project command, keep its whole output in .test-logs/<log>, return it."""
    env = tool_env()
    env.update(extra_env or {})
    result = subprocess.run(
        cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    if log:
        LOG_DIR.mkdir(exist_ok=True)
        (LOG_DIR / log).write_text(f"$ {' '.join(cmd)}\n{result.stdout}\n--- stderr ---\n{result.stderr}")
    return result


def tail(result: subprocess.CompletedProcess[str], lines: int = 80) -> str:
    text = (result.stdout + "\n" + result.stderr).splitlines()
    return "\n".join(text[-lines:])


def recap(output: str) -> dict[str, dict[str, int]]:
    """PLAY RECAP counters per host from ansible-playbook output."""
    return {
        m[1]: {"ok": int(m[2]), "changed": int(m[3]), "unreachable": int(m[4]), "failed": int(m[5])}
        for m in RECAP.finditer(output)
    }


FAST_PATH = re.compile(r"Fast path: (\d+) of (\d+) roles unchanged")


def fast_path(output: str) -> tuple[int, int]:
    """site.yml's fast path line: (roles skipped, roles selected); fails when it is missing."""
    found = FAST_PATH.search(output)
    assert found, f"no fast path line in the run's output:\n{output[-3000:]}"
    return int(found[1]), int(found[2])


def playbook(
    *args: str, inventory: str = TEST_INVENTORY, log: str | None = None, timeout: float = 1800
) -> subprocess.CompletedProcess[str]:
    return run(["ansible-playbook", "-i", inventory, *args], log=log, timeout=timeout)


def validate_each(
    cases: dict[str, dict], *args: str, log: str, inventory: str = TEST_INVENTORY
) -> dict[str, list[str]]:
    """playbooks/validate.yml for many inventories in one ansible-playbook run (one start of
    Ansible instead of one per case, about 5 s of CPU each): one local host per case, with the
    test inventory's group_vars and the case's values as host vars (above every group_vars,
    like -e for the variables validation reads). Returns, per case, the messages of the tasks
    that failed for it (a looped task's, one per item that failed); [] when it passed."""
    with tempfile.TemporaryDirectory(prefix="validate-each-") as work:
        folder = Path(work)
        (folder / "group_vars").symlink_to(Path(inventory) / "group_vars")
        local = {"ansible_connection": "local", "ansible_python_interpreter": "{{ ansible_playbook_python }}"}
        hosts = {name: {**local, **values} for name, values in cases.items()}
        groups = {"all": {"children": {"whatsapp": {"hosts": hosts}}}}
        (folder / "hosts.yml").write_text(yaml.safe_dump(groups))
        result = run(
            ["ansible-playbook", "-i", str(folder), "playbooks/validate.yml", *args],
            log=log,
            timeout=900,
            extra_env={"ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json", "ANSIBLE_FORKS": "4"},
        )
    # The JSON report, then what other callbacks print (the timer's line).
    report, _ = json.JSONDecoder().raw_decode(result.stdout[result.stdout.index("{") :])
    failed: dict[str, list[str]] = {name: [] for name in cases}
    for play in report["plays"]:
        for task in play["tasks"]:
            for host, outcome in task["hosts"].items():
                if outcome.get("failed") or outcome.get("unreachable"):
                    outcomes = [outcome, *(r for r in outcome.get("results", []) if r.get("failed"))]
                    failed[host] += [" ".join(str(o["msg"]).split()) for o in outcomes if o.get("msg")]
    for host, stats in report["stats"].items():
        assert stats["changed"] == 0, f"validating {host} changed something: {stats}"
    return failed


def message_naming(messages: list[str], name: str) -> bool:
    """Whether one of the messages is about that variable (it starts with its name)."""
    return any(m.startswith(f"{name}: ") for m in messages)


# The unit tests of the services' SQL (tests/unit/services): a throw-away database with the
# accounts and conversations schemas per test module, and a connection to it per test. A
# module that needs other schemas or more defines its own `dsn`.
@pytest.fixture(scope="module")
def dsn():
    from real_backends import throwaway_database  # noqa: PLC0415 - tests/unit/services only

    with throwaway_database(["accounts", "conversations"]) as url:
        yield url


@pytest.fixture
def conn(dsn):
    import psycopg  # noqa: PLC0415 - tests/unit/services only
    from psycopg.rows import dict_row  # noqa: PLC0415

    with psycopg.connect(dsn, autocommit=True, row_factory=dict_row) as connection:
        yield connection


@pytest.fixture(scope="session")
def root() -> Path:
    return ROOT


def _layer(nodeid: str) -> str:
    parts = nodeid.split("/")
    return parts[1] if len(parts) > 2 and parts[0] == "tests" else parts[0]


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    _layer_seconds[_layer(report.nodeid)] += report.duration
    if report.when == "call":
        _layer_counts[_layer(report.nodeid)] += 1
    # setup and teardown count too: a module fixture that deploys is where the time goes.
    _slow_tests[report.nodeid] = _slow_tests.get(report.nodeid, 0.0) + report.duration


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:  # noqa: ARG001
    if not _layer_seconds:
        return
    terminalreporter.section("time per test layer")
    terminalreporter.write_line(f"{'layer':<10} {'tests':>6} {'seconds':>9}")
    for layer in ("static", "unit", "roles", "e2e", "reliability", "swarm"):
        if layer in _layer_seconds:
            terminalreporter.write_line(
                f"{layer:<10} {_layer_counts[layer]:>6} {_layer_seconds[layer]:>9.1f}"
            )
    terminalreporter.write_line(
        f"{'total':<10} {sum(_layer_counts.values()):>6} {sum(_layer_seconds.values()):>9.1f}"
    )
    if _slow_tests:
        terminalreporter.write_line("")
        terminalreporter.write_line(f"{'the 30 slowest tests (setup + call + teardown)':<72} {'seconds':>8}")
        slowest = sorted(_slow_tests.items(), key=lambda item: item[1], reverse=True)[:30]
        for nodeid, seconds in slowest:
            terminalreporter.write_line(f"{nodeid[-72:]:<72} {seconds:>8.1f}")


@pytest.fixture(scope="session")
def deployed_stack() -> tuple[subprocess.CompletedProcess[str], float]:
    """The stack deployed once per run with the README's deploy command (test inventory).

    WHATSAPP_E2E_DEPLOYED=1 reuses a stack deployed by hand (a developer's quick loop);
    the test command never sets it, so CI always deploys."""
    start = time.monotonic()
    if os.environ.get("WHATSAPP_E2E_DEPLOYED") == "1":
        return subprocess.CompletedProcess(["(deployed by hand)"], 0, "", ""), 0.0
    result = run([str(ROOT / "scripts/deploy.sh"), "-i", TEST_INVENTORY], log="deploy-1.log", timeout=2400)
    return result, time.monotonic() - start


@pytest.fixture
def stopwatch():
    start = time.monotonic()
    return lambda: time.monotonic() - start


def operator_secrets() -> dict:
    """A full set of secrets as an operator makes them outside development (random values,
    a fresh signing key pair): what a vault holds. Development values are refused there."""
    from cryptography.hazmat.primitives import serialization  # noqa: PLC0415 - only these tests
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey  # noqa: PLC0415

    names = yaml.safe_load((ROOT / "group_vars/all/secrets.yml").read_text())["whatsapp_secret_variables"]
    dev = yaml.safe_load((ROOT / "inventories/airgapped/group_vars/whatsapp/secrets.yml").read_text())
    values: dict = {}
    for name in names:
        if isinstance(dev[name], dict):
            values[name] = {key: secrets.token_urlsafe(24) for key in dev[name]}
        else:
            values[name] = secrets.token_urlsafe(32)
    key = Ed25519PrivateKey.generate()
    values["whatsapp_jwt_private_key"] = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    values["whatsapp_jwt_public_key"] = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return values


def forms_of(values: dict) -> dict[str, set[str]]:
    """Each secret variable of values with the forms its value may take in a container's
    configuration or a deploy's output: as is, URL-encoded (inside a DSN), one-line PEM, and
    each base64 line of a key."""
    forms: dict[str, set[str]] = {}
    names = yaml.safe_load((ROOT / "group_vars/all/secrets.yml").read_text())["whatsapp_secret_variables"]
    for name in names:
        value = values[name]
        for key, item in value.items() if isinstance(value, dict) else [(None, value)]:
            text = str(item).strip()
            label = f"{name}[{key}]" if key else name
            found = {text, urllib.parse.quote(text, safe=""), text.replace("\n", "\\n")}
            found |= {line for line in text.splitlines() if len(line) >= 16 and "-----" not in line}
            forms[label] = found
    return forms


@functools.cache
def secret_forms(inventory: str = "airgapped") -> dict[str, set[str]]:
    """forms_of the secrets of that inventory (its development values)."""
    path = ROOT / "inventories" / inventory / "group_vars/whatsapp/secrets.yml"
    return forms_of(yaml.safe_load(path.read_text()))


def secrets_shown_in(text: str, inventory: str | dict = "airgapped") -> list[str]:
    """The secret variables of that inventory (or of a dict of values, e.g. a vault's) whose
    value, in any of its forms, is in text."""
    forms = forms_of(inventory) if isinstance(inventory, dict) else secret_forms(inventory)
    return [label for label, found in forms.items() if any(form in text for form in found)]
