"""The validation play refuses bad prometheus values before anything changes, naming each one:
the meaning checks (tasks/validate.yml) and the argument spec's types. One validation run, a
host per case (conftest.validate_each)."""

from __future__ import annotations

import pytest
from conftest import message_naming, validate_each

# Each passes the argument spec's type and fails the role's meaning checks; one case reports all.
BAD_VALUES = {
    "prometheus_retention_time": "forever",
    "prometheus_retention_size": "1G",
    "prometheus_scrape_interval": "often",
    "prometheus_memory_limit": "64m",
    "prometheus_alert_5xx_ratio": "5",
    "prometheus_external_labels": {"bad-label": "x"},
}


@pytest.fixture(scope="module")
def refused() -> dict[str, list[str]]:
    cases = {
        "meaning": BAD_VALUES,
        "type": {"prometheus_query_max_samples": "many"},
        "production": {"whatsapp_environment": "production"},
    }
    return validate_each(cases, log="validate-prometheus.log")


def test_bad_prometheus_values_are_refused_naming_each_variable(refused):
    for name in BAD_VALUES:
        assert message_naming(refused["meaning"], name), (name, refused["meaning"])


def test_a_value_of_the_wrong_type_is_refused_by_the_argument_spec(refused):
    failure = " | ".join(refused["type"])
    assert "validation of arguments failed" in failure.lower(), failure[:2000]
    assert "prometheus_query_max_samples" in failure, failure[:2000]


def test_the_development_password_of_the_exporter_login_is_refused_in_production(refused):
    failure = " | ".join(refused["production"])
    assert "prometheus_postgres_exporter_password still has a development default" in failure
