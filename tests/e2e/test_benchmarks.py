"""Layer 4, end to end: the delivery benchmark's quick mode against the deployed stack, so
that benchmarks/ws_delivery.py cannot break unnoticed. Only that it produced its tables
(and that what it measured is plausible) is asserted: figures belong to benchmarks/README.md."""

from __future__ import annotations

import re
import sys

import pytest
from conftest import ROOT, TEST_INVENTORY, run, tail

pytestmark = pytest.mark.docker

TABLES = (
    "## the idle stack",
    "## health checks",
    "## delivery",
    "## CPU ms per delivered message, per container",
    "## reconnect storm",
    "## idle sockets on one chat container",
)


@pytest.fixture(scope="module", autouse=True)
def stack(deployed_stack):
    assert deployed_stack[0].returncode == 0, "the deploy failed: see the deploy test"


def rows_after(output: str, heading: str) -> list[list[str]]:
    """The Markdown table rows (cells) under `heading`, without the header and rule."""
    section = output.split(heading, 1)[1].split("\n## ", 1)[0]
    lines = [line for line in section.splitlines() if line.startswith("|")]
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in lines[2:]]


def test_quick_mode_prints_every_table_with_what_it_measured():
    result = run(
        [sys.executable, str(ROOT / "benchmarks/ws_delivery.py"), "-i", TEST_INVENTORY, "--quick"],
        timeout=300,
        log="benchmark-quick.log",
    )
    assert result.returncode == 0, tail(result)
    out = result.stdout
    for heading in TABLES:
        assert heading in out, f"{heading!r} missing:\n{out[-3000:]}"
    checks = rows_after(out, "## health checks")
    assert checks and all(row[2] == "yes" for row in checks), checks
    delivery = {row[0]: row for row in rows_after(out, "## delivery")}
    stack_row = delivery["stack"]
    sent, acked, refused, delivered = (int(cell) for cell in stack_row[3:7])
    assert sent > 0 and acked == sent and refused == 0 and delivered == sent, stack_row
    assert "bare websockets relay" in delivery
    per_container = rows_after(out, "## CPU ms per delivered message")
    names = {row[0] for row in per_container}
    assert {"chat", "rabbitmq", "postgres", "**sum**"} <= names, names
    assert all(re.fullmatch(r"\**[0-9.]+\**", row[1]) for row in per_container), per_container
    storm = rows_after(out, "## reconnect storm")[0]
    assert storm[0] == storm[3], f"not every socket caught up after the restart: {storm}"
