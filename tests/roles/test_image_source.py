"""docker_host's image source with `auto`: decided once per Docker host, then kept.

A local HTTP server stands for the registry (answers 200), a closed port for a registry
that does not answer; the record lives in a temporary whatsapp_config_root."""

from __future__ import annotations

import http.server
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


def choose(root: Path, url: str, source: str = "auto", log: str = "image-source.log"):
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
        log=log,
        timeout=120,
    )
    assert result.returncode == 0, tail(result)
    chosen = re.search(r"chosen=(\w+)", result.stdout)
    assert chosen, tail(result)
    return chosen[1], result


def test_auto_decides_once_and_a_registry_that_goes_away_changes_nothing(tmp_path, registry):
    chosen, first = choose(tmp_path, registry, log="image-source-1.log")
    assert chosen == "upstream"
    assert "(auto: the registry answered)" in first.stdout
    assert (tmp_path / "image-source").read_text() == "upstream\n"

    # The registry does not answer any more: the choice stays, no probe is made.
    chosen, again = choose(tmp_path, closed_port_url(), log="image-source-2.log")
    assert chosen == "upstream"
    assert "kept from the first deploy" in again.stdout, tail(again)
    probe = again.stdout.split("Probe the container registry once]", 1)[1].split("TASK [", 1)[0]
    assert probe.strip("* \n").startswith("skipping:"), probe
    assert recap(again.stdout)["localhost"]["changed"] == 0


def test_an_explicit_source_wins_and_is_kept_by_later_auto_runs(tmp_path, registry):
    assert choose(tmp_path, closed_port_url(), log="image-source-3.log")[0] == "build"
    chosen, explicit = choose(tmp_path, registry, source="upstream", log="image-source-4.log")
    assert chosen == "upstream"
    assert "the first deploy had chosen build" in explicit.stdout, tail(explicit)
    # auto now keeps the operator's choice, even with no registry answering.
    assert choose(tmp_path, closed_port_url(), log="image-source-5.log")[0] == "upstream"
