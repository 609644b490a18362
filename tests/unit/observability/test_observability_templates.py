"""The observability roles' templates render with the roles' variables into what the servers read."""

from __future__ import annotations

import json
import re

import yaml
from observability_helpers import project_vars, rendered


def test_grafana_datasource_points_at_prometheus_on_the_backend_network():
    data = yaml.safe_load((rendered() / "grafana-datasources.yml").read_text())
    (source,) = data["datasources"]
    assert source["type"] == "prometheus"
    assert source["url"] == f"http://{project_vars()['prometheus_container_name']}:9090"
    assert source["uid"] == "whatsapp-prometheus"
    assert source["isDefault"] is True


def test_grafana_dashboard_provider_reads_the_mounted_folder():
    data = yaml.safe_load((rendered() / "grafana-dashboards.yml").read_text())
    (provider,) = data["providers"]
    assert provider["type"] == "file"
    assert provider["options"]["path"] == "/etc/grafana/dashboards"
    assert provider["allowUiUpdates"] is False


def test_logstash_pipeline_has_both_inputs_and_daily_indexes_per_kind():
    text = (rendered() / "logstash-whatsapp.conf").read_text()
    assert re.search(r"tcp \{[^}]*port => 5000[^}]*codec => json_lines", text, re.S)
    assert re.search(r"http \{[^}]*port => 5001", text, re.S)
    assert 'index => "whatsapp-%{[@metadata][kind]}-%{+YYYY.MM.dd}"' in text
    assert '"[@metadata][kind]" => "access"' in text and '"[@metadata][kind]" => "application"' in text
    # Credentials come from the container's environment, never from the file.
    assert 'password => "${LOGSTASH_ELASTICSEARCH_PASSWORD}"' in text
    assert project_vars()["secrets"]["logstash_elasticsearch_password"] not in text


def test_logstash_pipeline_braces_and_quotes_balance():
    text = (rendered() / "logstash-whatsapp.conf").read_text()
    code = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))
    # Regex literals (/.../) and strings may hold braces: drop them before counting.
    stripped = re.sub(r'"(?:[^"\\]|\\.)*"', '""', code)
    stripped = re.sub(r"=~ /(?:[^/\\]|\\.)*/", "=~ //", stripped)
    assert stripped.count("{") == stripped.count("}")
    assert code.count('"') % 2 == 0
    assert [ln.split()[0] for ln in code.splitlines() if ln and not ln[0].isspace() and ln[0] != "}"] == [
        "input",
        "filter",
        "output",
    ]


def test_the_elastic_stacks_secrets_are_files_not_environment():
    """What `docker inspect` would show of Elasticsearch, Logstash and Kibana (their env, command
    and entrypoint) holds no secret value: each secret is a file under /run/secrets, read
    into the environment inside the container."""
    specs = json.loads((rendered() / "elastic-specs.json").read_text())
    secrets = project_vars()["secrets"]
    values = [secrets[name] for name in (
        "elasticsearch_elastic_password", "kibana_elasticsearch_password", "kibana_encryption_key",
        "logstash_elasticsearch_password")]  # fmt: skip
    assert all(len(v) >= 16 for v in values)
    for name, spec in specs.items():
        shown = json.dumps([spec.get("env", {}), spec.get("command", []), spec.get("entrypoint", [])])
        assert not [v for v in values if v in shown], f"{name} shows a secret in docker inspect"
    assert set(specs["kibana"]["secrets"]) == {"elasticsearch_password", "encryption_key"}
    assert specs["kibana"]["secrets"]["encryption_key"] == secrets["kibana_encryption_key"]
    assert "/run/secrets/encryption_key" in specs["kibana"]["command"][-1]
    logstash_secret = secrets["logstash_elasticsearch_password"]
    assert specs["logstash"]["secrets"] == {"elasticsearch_password": logstash_secret}
    assert specs["logstash"]["entrypoint"][-1].endswith("exec /usr/local/bin/docker-entrypoint")
