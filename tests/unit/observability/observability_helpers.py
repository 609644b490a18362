"""Helpers of the observability unit tests: the roles' templates rendered by Ansible itself
(with the roles' variables), and the metric names the services define."""

from __future__ import annotations

import functools
import re
import tempfile
from pathlib import Path

import yaml
from conftest import ROOT, playbook, tail
from prometheus_client import CollectorRegistry, gc_collector, platform_collector, process_collector

HERE = Path(__file__).resolve().parent
SERVICES = ROOT / "services"
DASHBOARDS = ROOT / "roles" / "grafana" / "files" / "dashboards"
SERVICE_NAMES = ["user", "gateway", "chat", "message_processor", "notification", "scheduled_jobs"]


@functools.cache
def rendered() -> Path:
    """Folder holding grafana-datasources.yml, grafana-dashboards.yml and logstash-whatsapp.conf."""
    out = Path(tempfile.mkdtemp(prefix="observability-rendered-"))
    result = playbook(str(HERE / "render.yml"), "-e", f"render_dir={out}")
    assert result.returncode == 0, tail(result)
    return out


_DEFINITION = re.compile(r"\b(Counter|Gauge|Histogram|Summary)\(\s*\"([a-zA-Z_:][a-zA-Z0-9_:]*)\"", re.S)


@functools.cache
def exported_metric_names() -> frozenset[str]:
    """Every series name the services' prometheus_client metrics export, from their definitions
    in services/ (a counter `x_total` exports x_total and x_created; a histogram x exports
    x_bucket, x_sum, x_count, x_created), plus the process, platform and GC collectors each
    app registers."""
    names: set[str] = set()
    for path in SERVICES.rglob("*.py"):
        for kind, name in _DEFINITION.findall(path.read_text()):
            base = name.removesuffix("_total")
            if kind == "Counter":
                names |= {f"{base}_total", f"{base}_created"}
            elif kind in ("Histogram", "Summary"):
                names |= {name, f"{name}_bucket", f"{name}_sum", f"{name}_count", f"{name}_created"}
            else:
                names.add(name)
    registry = CollectorRegistry()
    process_collector.ProcessCollector(registry=registry)
    platform_collector.PlatformCollector(registry=registry)
    gc_collector.GCCollector(registry=registry)
    for family in registry.collect():
        names |= {sample.name for sample in family.samples}
    # The collectors export nothing on some platforms: name the ones Linux has.
    names |= {"process_resident_memory_bytes", "process_cpu_seconds_total", "process_open_fds"}
    return frozenset(names)


@functools.cache
def project_vars() -> dict:
    """group_vars/all merged (plain values only), with the airgapped inventory's secrets under `secrets`."""
    merged: dict = {}
    for path in sorted((ROOT / "group_vars" / "all").glob("*.yml")):
        merged.update(yaml.safe_load(path.read_text()) or {})
    secrets = ROOT / "inventories" / "airgapped" / "group_vars" / "whatsapp" / "secrets.yml"
    merged["secrets"] = yaml.safe_load(secrets.read_text())
    return merged
