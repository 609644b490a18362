"""The observability roles' templates render with the roles' variables into what the servers read."""

from __future__ import annotations

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
