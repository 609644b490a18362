"""The validation play: a build-mode inventory that demands an upstream-only role fails naming
`<role>_required` before anything changes, and production refuses the new development secrets."""

from __future__ import annotations

import pytest
from conftest import playbook, recap, tail

ROLES = ["grafana", "elasticsearch", "logstash", "kibana"]
SECRETS = [
    "grafana_admin_password",
    "elasticsearch_elastic_password",
    "kibana_elasticsearch_password",
    "kibana_encryption_key",
    "logstash_elasticsearch_password",
]


# Each scenario checks its own role; here the first and the last of the Observability play.
@pytest.mark.parametrize("role", [ROLES[0], ROLES[-1]])
def test_required_role_without_a_registry_fails_naming_the_variable(role):
    result = playbook("playbooks/validate.yml", "-e", f"{role}_required=true")
    output = " ".join(result.stdout.split())
    assert result.returncode != 0, tail(result)
    assert f"{role}_required: is true, but" in output, tail(result)
    assert "Debian does not package it" in output
    assert all(c["changed"] == 0 for c in recap(result.stdout).values())


def test_production_refuses_the_observability_development_secrets():
    result = playbook("playbooks/validate.yml", "-e", "whatsapp_environment=production")
    assert result.returncode != 0
    for secret in SECRETS:
        assert f"{secret} still has a development default" in result.stdout, secret


# One run per role: its meaning checks report every bad value of the role at once.
BAD_VALUES = {
    "grafana": {"grafana_admin_password": "short", "grafana_prometheus_scrape_interval": "often"},
    "elasticsearch": {"elasticsearch_memory_limit": "512m", "elasticsearch_heap_percent": "90"},
    "logstash": {"logstash_queue_max_bytes": "lots", "logstash_http_port": "5000"},
    "kibana": {"kibana_encryption_key": "too-short-for-a-key", "kibana_heap_percent": "95"},
}


@pytest.mark.parametrize("role", BAD_VALUES)
def test_bad_observability_values_are_refused_naming_each_variable(role):
    args = [arg for name, value in BAD_VALUES[role].items() for arg in ("-e", f"{name}={value}")]
    result = playbook("playbooks/validate.yml", *args)
    assert result.returncode != 0, tail(result)
    for name in BAD_VALUES[role]:
        assert f'"msg": "{name}: ' in result.stdout, (name, tail(result))
