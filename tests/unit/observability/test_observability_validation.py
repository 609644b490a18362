"""The validation play: a build-mode inventory that demands an upstream-only role fails naming
`<role>_required` before anything changes, production refuses the new development secrets, and
each role's meaning checks name every bad value. All of it in one validation run, a host per case
(conftest.validate_each)."""

from __future__ import annotations

import pytest
from conftest import message_naming, validate_each

ROLES = ["grafana", "elasticsearch", "logstash", "kibana"]
SECRETS = [
    "grafana_admin_password",
    "elasticsearch_elastic_password",
    "kibana_elasticsearch_password",
    "kibana_encryption_key",
    "logstash_elasticsearch_password",
]
# Each scenario checks its own role; here the first and the last of the Observability play.
REQUIRED = [ROLES[0], ROLES[-1]]
# One case per role: its meaning checks report every bad value of the role at once.
BAD_VALUES = {
    "grafana": {"grafana_admin_password": "short", "grafana_prometheus_scrape_interval": "often"},
    "elasticsearch": {"elasticsearch_memory_limit": "512m", "elasticsearch_heap_percent": "90"},
    "logstash": {"logstash_queue_max_bytes": "lots", "logstash_http_port": "5000"},
    "kibana": {"kibana_encryption_key": "too-short-for-a-key", "kibana_heap_percent": "95"},
}


@pytest.fixture(scope="module")
def refused() -> dict[str, list[str]]:
    cases = {f"required-{role}": {f"{role}_required": True} for role in REQUIRED}
    cases |= {f"bad-{role}": values for role, values in BAD_VALUES.items()}
    cases["production"] = {"whatsapp_environment": "production"}
    return validate_each(cases, log="validate-observability.log")


@pytest.mark.parametrize("role", REQUIRED)
def test_required_role_without_a_registry_fails_naming_the_variable(refused, role):
    failure = " | ".join(refused[f"required-{role}"])
    assert f"{role}_required: is true, but" in failure, failure[:2000]
    assert "Debian does not package it" in failure


def test_production_refuses_the_observability_development_secrets(refused):
    for secret in SECRETS:
        assert f"{secret} still has a development default" in " | ".join(refused["production"]), secret


@pytest.mark.parametrize("role", BAD_VALUES)
def test_bad_observability_values_are_refused_naming_each_variable(refused, role):
    for name in BAD_VALUES[role]:
        assert message_naming(refused[f"bad-{role}"], name), (name, refused[f"bad-{role}"])
