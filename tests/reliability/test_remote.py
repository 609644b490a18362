"""Layer 5: inventories/remote over real SSH.

An sshd on 127.0.0.1 (a port and a key made here) stands for the remote Docker host; the
playbook connects through it with the host's own Python, as on a real remote machine.
Deploys the whole stack with the remote inventory's settings and its own secrets (only
nginx published) onto a host it first empties. Runs after the no-loss test and before the
teardown (it replaces the single-host stack and its data)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import yaml
from conftest import ROOT, operator_secrets, recap, run, secrets_shown_in, tail
from stack_client import User

pytestmark = pytest.mark.docker

SSH_PORT = 2222
# The containers every deploy here makes (Grafana and the Elastic stack need a registry).
SERVICES = [
    "whatsapp-postgres",
    "whatsapp-mongodb",
    "whatsapp-redis",
    "whatsapp-rabbitmq",
    "whatsapp-user",
    "whatsapp-chat",
    "whatsapp-message-processor",
    "whatsapp-scheduled-jobs",
    "whatsapp-notification",
    "whatsapp-gateway",
    "whatsapp-nginx",
    "whatsapp-prometheus",
    "whatsapp-postgres-exporter",
    "whatsapp-redis-exporter",
]


@pytest.fixture(scope="module")
def sshd(tmp_path_factory):
    """An sshd on 127.0.0.1:SSH_PORT that accepts root with a key made for this test."""
    if not shutil.which("sshd") and not os.path.exists("/usr/sbin/sshd"):
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive", RUNLEVEL="1")
        # policy-rc.d keeps Debian's own ssh service from starting on port 22.
        policy = "/usr/sbin/policy-rc.d"
        added = not os.path.exists(policy)
        if added:
            with open(policy, "w") as handle:
                handle.write("#!/bin/sh\nexit 101\n")
            os.chmod(policy, 0o755)  # noqa: S103 (invoke-rc.d runs it)
        try:
            subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
            subprocess.run(["apt-get", "install", "-y", "-qq", "openssh-server"], check=True, env=env)
        finally:
            if added:
                os.unlink(policy)
    work = tmp_path_factory.mktemp("sshd")
    key = work / "id_ed25519"
    host_key = work / "host_ed25519"
    for path in (key, host_key):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)
    authorized = work / "authorized_keys"
    authorized.write_text((work / "id_ed25519.pub").read_text())
    authorized.chmod(0o600)
    os.makedirs("/run/sshd", exist_ok=True)
    config = work / "sshd_config"
    config.write_text(
        f"ListenAddress 127.0.0.1\nPort {SSH_PORT}\nHostKey {host_key}\nPermitRootLogin prohibit-password\n"
        f"AuthorizedKeysFile {authorized}\nPasswordAuthentication no\nStrictModes no\nUsePAM no\n"
        f"PidFile {work}/sshd.pid\n"
    )
    daemon = subprocess.Popen(
        ["/usr/sbin/sshd", "-D", "-e", "-f", str(config)], stderr=subprocess.PIPE, text=True
    )
    deadline = time.monotonic() + 20
    probe = [
        "ssh",
        "-i",
        str(key),
        "-p",
        str(SSH_PORT),
        "-o",
        "StrictHostKeyChecking=no",
        "-o",
        f"UserKnownHostsFile={work}/known_hosts",
        "-o",
        "BatchMode=yes",
        "root@127.0.0.1",
        "true",
    ]
    while subprocess.run(probe, capture_output=True, check=False).returncode != 0:
        assert daemon.poll() is None, daemon.stderr.read()
        assert time.monotonic() < deadline, "sshd did not accept the key in 20 s"
        time.sleep(0.5)
    yield {"key": str(key), "known_hosts": f"{work}/known_hosts"}
    daemon.terminate()
    daemon.wait(timeout=10)


@pytest.fixture(scope="module")
def vault_secrets(tmp_path_factory) -> Path:
    """What the inventory's vault would hold: its own secrets (a staging inventory refuses
    the development ones)."""
    path = tmp_path_factory.mktemp("remote") / "secrets.yml"
    path.write_text(yaml.safe_dump(operator_secrets()))
    return path


def remote(sshd, vault: Path, *args: str, log: str):
    env = {
        "WHATSAPP_REMOTE_HOST": "127.0.0.1",
        "WHATSAPP_REMOTE_PORT": str(SSH_PORT),
        "WHATSAPP_REMOTE_USER": "root",
        "WHATSAPP_REMOTE_KEY": sshd["key"],
        "ANSIBLE_HOST_KEY_CHECKING": "False",
        "ANSIBLE_SSH_ARGS": (
            f"-o UserKnownHostsFile={sshd['known_hosts']} -o ControlMaster=auto -o ControlPersist=60s"
        ),
    }
    # The inventory's secrets would come from its vault: the test makes its own.
    # nginx stays on loopback here (the machine's rule), where a real remote host uses 0.0.0.0.
    command = [
        "ansible-playbook",
        "-i",
        str(ROOT / "inventories/remote"),
        "-e",
        f"@{vault}",
        "-e",
        "nginx_publish_address=127.0.0.1",
        *args,
    ]
    return run(command, log=log, timeout=1200, extra_env=env)


def stack_containers() -> list[dict]:
    """docker inspect of every running container of the stack."""
    ids = subprocess.check_output(
        ["docker", "ps", "-q", "--filter", "label=com.whatsapp.stack=whatsapp"], text=True
    ).split()
    return json.loads(subprocess.check_output(["docker", "inspect", *ids])) if ids else []


def in_container(name: str, *argv: str) -> str:
    return subprocess.check_output(["docker", "exec", name, *argv], text=True, timeout=30)


def test_remote_inventory_deploys_the_whole_stack_over_ssh_and_publishes_only_nginx(
    deployed_stack, sshd, vault_secrets
):
    """Every role onto a Docker host reached over SSH, from nothing, with the host's own Python
    (no database driver on it): the roles administer PostgreSQL, MongoDB, Prometheus and
    Grafana inside their containers, since nothing but nginx is published. Then the
    contract's main flows through its nginx, and a second run of every task is changed=0."""
    assert deployed_stack[0].returncode == 0
    # A fresh remote host: the single-host stack and its data go first, by the remote
    # inventory's own clean over SSH.
    cleaned = remote(
        sshd, vault_secrets, "playbooks/clean.yml", "-e", "clean_volumes=true", log="remote-clean.log"
    )
    assert cleaned.returncode == 0, tail(cleaned, 60)
    assert stack_containers() == []

    result = remote(sshd, vault_secrets, "site.yml", log="remote-deploy.log")
    assert result.returncode == 0, tail(result, 120)
    assert recap(result.stdout)["whatsapp-remote"]["failed"] == 0
    containers = {c["Name"].lstrip("/"): c for c in stack_containers()}
    assert set(SERVICES) <= set(containers), sorted(containers)
    unhealthy = {n: c["State"].get("Health", {}).get("Status") for n, c in containers.items()}
    assert {n: s for n, s in unhealthy.items() if s not in (None, "healthy")} == {}
    published = {
        name: bound
        for name, c in containers.items()
        if (bound := {port: b for port, b in (c["HostConfig"]["PortBindings"] or {}).items() if b})
    }
    assert set(published) == {"whatsapp-nginx"}, published
    assert published["whatsapp-nginx"]["8080/tcp"] == [{"HostIp": "127.0.0.1", "HostPort": "80"}]
    # The closing table came back over SSH too.
    assert "whatsapp-redis" in result.stdout and "ADDRESS" in result.stdout

    # The contract's main flows through the remote host's nginx.
    alice, bob = User("Alice on the remote host"), User("Bob on the remote host")
    conversation = alice.direct_with(bob)
    with alice.socket() as sender, bob.socket() as receiver:
        ack = sender.send_message(conversation, "over ssh")
        assert ack["type"] == "message.ack", ack
        receiver.wait_for(lambda f: f.get("type") == "message.new" and f["message"]["body"] == "over ssh")
    deadline = time.monotonic() + 30
    while [m["body"] for m in bob.history(conversation)] != ["over ssh"]:
        assert time.monotonic() < deadline, bob.history(conversation)
        time.sleep(0.5)
    # The exporter's login, made inside the PostgreSQL container, works: Prometheus (asked
    # inside its container, it is not published) sees pg_up 1.
    deadline = time.monotonic() + 60
    while "pg_up 1" not in in_container(
        "whatsapp-postgres-exporter", "wget", "-q", "-O", "-", "http://127.0.0.1:9187/metrics"
    ):
        assert time.monotonic() < deadline, "the PostgreSQL exporter never logged in"
        time.sleep(2)

    # Every task of every role (the fast path off) is idempotent on its own, and verbose with
    # diffs prints no secret (no_log on every task that handles one): the test command's one
    # full second run of the whole stack.
    again = remote(
        sshd,
        vault_secrets,
        "site.yml",
        "-e",
        "whatsapp_deploy_fast_path=false",
        "-v",
        "--diff",
        log="remote-deploy-2.log",
    )
    assert again.returncode == 0, tail(again, 120)
    assert recap(again.stdout)["whatsapp-remote"]["changed"] == 0, tail(again, 120)
    printed = secrets_shown_in(again.stdout, yaml.safe_load(vault_secrets.read_text()))
    assert not printed, f"deploy -v --diff printed the values of {printed}"
    # It really went through SSH: the connection plugin and the host's own interpreter.
    assert (
        "ESTABLISH SSH CONNECTION"
        in remote(sshd, vault_secrets, "playbooks/health_check.yml", "-vvv", log="remote-health.log").stdout
    )
