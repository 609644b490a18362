"""The Postman flow (docs/api/whatsapp.flow.postman_collection.json, made by
scripts/gen_docs.py) runs with newman against the deployed stack through nginx: two users
register, talk, react, edit, delete, export and leave, every request checking its status.

newman comes from npm at the version tests/newman/package-lock.json pins (`npm ci` into
.cache/newman, once per checkout)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from conftest import LOG_DIR, ROOT, run, tail
from stack_client import ADDRESS, GROUP_VARS

pytestmark = pytest.mark.docker

FLOW = ROOT / "docs/api/whatsapp.flow.postman_collection.json"
PINNED = ROOT / "tests/newman"
PREFIX = ROOT / ".cache/newman"


@pytest.fixture(scope="module")
def newman(deployed_stack) -> Path:
    assert deployed_stack[0].returncode == 0, "the deploy failed: see the deploy test"
    binary = PREFIX / "node_modules/.bin/newman"
    lock = (PINNED / "package-lock.json").read_text()
    if not binary.exists() or (PREFIX / "package-lock.json").read_text() != lock:
        npm = shutil.which("npm")
        assert npm, "npm is needed to install newman (apt-get install npm; scripts/test.sh does)"
        PREFIX.mkdir(parents=True, exist_ok=True)
        for name in ("package.json", "package-lock.json"):
            shutil.copyfile(PINNED / name, PREFIX / name)
        installed = run(
            [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"],
            cwd=PREFIX,
            timeout=600,
            log="npm-newman.log",
        )
        assert installed.returncode == 0, tail(installed)
    return binary


def test_the_postman_flow_runs_green_with_newman(newman: Path):
    report = LOG_DIR / "newman-flow.json"
    base_url = f"http://{ADDRESS}:{GROUP_VARS['nginx_http_port']}"
    result = run(
        [
            str(newman),
            "run",
            str(FLOW),
            "--env-var",
            f"baseUrl={base_url}",
            "--reporters",
            "cli,json",
            "--reporter-json-export",
            str(report),
            "--color",
            "off",
            "--timeout-request",
            "15000",
        ],
        timeout=300,
        log="newman-flow.log",
    )
    assert result.returncode == 0, tail(result)
    stats = json.loads(report.read_text())["run"]["stats"]
    requests = len(json.loads(FLOW.read_text())["item"])
    assert stats["requests"] == {"total": requests, "pending": 0, "failed": 0}, stats
    assert stats["testScripts"]["failed"] == 0, stats  # a script that does not even run
    assert stats["assertions"]["failed"] == 0 and stats["assertions"]["total"] == requests, stats
