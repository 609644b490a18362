"""Secrets out of the environment, on the deployed stack: every secret reaches its container
as a file under /run/secrets (mode 0400, owned by the container's user), and `docker inspect`
of every container of the stack (environment, command, labels, health check) shows none of
the inventory's secret values."""

from __future__ import annotations

import json
import subprocess

import pytest
from conftest import secrets_shown_in
from stack_client import GROUP_VARS

pytestmark = pytest.mark.docker

SECRETS_DIR = "/run/secrets"
# Secret files some containers must hold (role -> file names under /run/secrets).
MUST_HOLD = {
    "user": {"jwt_private_key", "postgres_dsn", "redis_url"},
    "chat": {"postgres_dsn", "redis_url", "rabbitmq_url", "mongodb_url"},
    "postgres": {"postgres_password"},
    "mongodb": {"mongodb_root_password"},
    "redis": {"redis_password"},
}


@pytest.fixture(scope="module", autouse=True)
def stack(deployed_stack):
    assert deployed_stack[0].returncode == 0, "the deploy failed: see the deploy test"


def stack_containers() -> list[dict]:
    ids = subprocess.check_output(
        ["docker", "ps", "-q", "--filter", f"label=com.whatsapp.stack={GROUP_VARS['whatsapp_stack_name']}"],
        text=True,
    ).split()
    assert len(ids) >= 10, f"the stack is not running: {len(ids)} containers"
    return json.loads(subprocess.check_output(["docker", "inspect", *ids]))


def test_docker_inspect_shows_no_secret_value():
    leaks = []
    for data in stack_containers():
        leaks += [f"{data['Name'].lstrip('/')}: {label}" for label in secrets_shown_in(json.dumps(data))]
    assert not leaks, "secret values visible in docker inspect:\n" + "\n".join(leaks)


def secret_files(data: dict) -> dict[str, tuple[str, str]]:
    """The files under /run/secrets of a running container: name -> (mode, owner uid)."""
    listing = subprocess.run(
        ["docker", "exec", data["Id"], "find", SECRETS_DIR, "-type", "f", "-printf", r"%f %m %U\n"],
        capture_output=True,
        text=True,
        check=False,
    )
    if listing.returncode != 0:
        return {}
    return {name: (mode, uid) for name, mode, uid in (line.split() for line in listing.stdout.splitlines())}


def test_secrets_are_files_readable_only_by_the_container_user():
    seen_roles = set()
    for data in stack_containers():
        name = data["Name"].lstrip("/")
        role = data["Config"]["Labels"].get("com.whatsapp.role", "")
        files = secret_files(data)
        user = (data["Config"]["User"] or "0").split(":")[0]
        uid = (
            user
            if user.isdigit()
            else subprocess.check_output(["docker", "exec", data["Id"], "id", "-u"], text=True).strip()
        )
        for file, (mode, owner) in files.items():
            assert (mode, owner) == ("400", uid), (
                f"{name}: {SECRETS_DIR}/{file} is mode {mode}, owner {owner}"
            )
        env = dict(item.split("=", 1) for item in data["Config"]["Env"])
        pointers = {
            key.removesuffix("_FILE") for key, path in env.items() if path.startswith(f"{SECRETS_DIR}/")
        }
        for variable in pointers:
            assert env[f"{variable}_FILE"].rsplit("/", 1)[1] in files, (
                f"{name}: {variable}_FILE names no file"
            )
        if role in MUST_HOLD and name.removeprefix(f"{GROUP_VARS['whatsapp_stack_name']}-") == role:
            missing = MUST_HOLD[role] - set(files)
            assert not missing, f"{name}: {sorted(missing)} do not arrive as files under {SECRETS_DIR}"
            seen_roles.add(role)
    assert seen_roles == set(MUST_HOLD), f"containers not found: {sorted(set(MUST_HOLD) - seen_roles)}"
