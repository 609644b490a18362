"""docker_host's image source: decided once per Docker host, then kept; a run that would
change the server a data volume was made with is refused until confirmed.

A local HTTP server stands for the registry (answers 200), a closed port for a registry
that does not answer; the record lives in a temporary whatsapp_config_root."""

from __future__ import annotations

import http.server
import json
import re
import socket
import threading
from pathlib import Path

import pytest
from conftest import ROOT, playbook, recap, tail


@pytest.fixture
def registry():
    """http://127.0.0.1:<port>/v2/ answering 200, like a reachable registry."""

    class Answer(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server's name
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Answer)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v2/"
    server.shutdown()


def closed_port_url() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{probe.getsockname()[1]}/v2/"


def choose(root: Path, url: str, *extra: str, source: str = "auto", log: str = "image-source.log", ok=True):
    result = playbook(
        str(ROOT / "tests/roles/playbooks/image_source.yml"),
        "-e",
        f"whatsapp_config_root={root}",
        "-e",
        f"whatsapp_registry_probe_url={url}",
        "-e",
        "whatsapp_registry_probe_timeout=2",
        "-e",
        f"whatsapp_image_source={source}",
        *extra,
        log=log,
        timeout=120,
    )
    if not ok:
        assert result.returncode != 0, tail(result)
        return None, result
    assert result.returncode == 0, tail(result)
    chosen = re.search(r"chosen=(\w+)", result.stdout)
    assert chosen, tail(result)
    return chosen[1], result


def record(root: Path) -> dict:
    return json.loads((root / "image-choice.json").read_text())


def test_auto_decides_once_and_a_registry_that_goes_away_changes_nothing(tmp_path, registry):
    chosen, first = choose(tmp_path, registry, log="image-source-1.log")
    assert chosen == "upstream"
    assert "(auto: the registry answered)" in first.stdout
    assert record(tmp_path)["source"] == "upstream"
    assert record(tmp_path)["stores"]["mongodb"].startswith("MongoDB 7.")

    # The registry does not answer any more: the choice stays, no probe is made.
    chosen, again = choose(tmp_path, closed_port_url(), log="image-source-2.log")
    assert chosen == "upstream"
    assert "kept from the first deploy" in again.stdout, tail(again)
    probe = again.stdout.split("Probe the container registry once]", 1)[1].split("TASK [", 1)[0]
    assert probe.strip("* \n").startswith("skipping:"), probe
    assert recap(again.stdout)["localhost"]["changed"] == 0


def test_a_source_that_would_change_a_stores_server_is_refused_until_confirmed(tmp_path, registry):
    assert choose(tmp_path, closed_port_url(), log="image-source-3.log")[0] == "build"
    before = record(tmp_path)
    assert before["stores"]["redis"] == "Redis 7.0"

    _, refused = choose(tmp_path, registry, source="upstream", log="image-source-4.log", ok=False)
    # Named: the volumes whose server changes, with what each change needs; PostgreSQL stays 15.
    for volume in ("whatsapp-mongodb-data", "whatsapp-redis-data", "whatsapp-rabbitmq-data"):
        assert volume in refused.stdout, tail(refused)
    assert "SecantusDB 0.7 (MongoDB stand-in) -> MongoDB 7.0" in refused.stdout, tail(refused)
    assert "whatsapp-postgres-data" not in refused.stdout
    assert "whatsapp_image_source_change_confirmed=true" in refused.stdout
    assert record(tmp_path) == before, "a refused run changed the record"

    chosen, confirmed = choose(
        tmp_path,
        registry,
        "-e",
        "whatsapp_image_source_change_confirmed=true",
        source="upstream",
        log="image-source-5.log",
    )
    assert chosen == "upstream"
    assert "mongodb, rabbitmq, redis change servers" in confirmed.stdout, tail(confirmed)
    assert record(tmp_path)["source"] == "upstream"
    # auto now keeps the confirmed choice, even with no registry answering.
    assert choose(tmp_path, closed_port_url(), log="image-source-6.log")[0] == "upstream"
