"""The validation play refuses bad prometheus values before anything changes, naming each one:
the meaning checks (tasks/validate.yml) and the argument spec's types."""

from __future__ import annotations

from conftest import playbook, recap, tail

# Each passes the argument spec's type and fails the role's meaning checks; one run reports all.
BAD_VALUES = {
    "prometheus_retention_time": "forever",
    "prometheus_retention_size": "1G",
    "prometheus_scrape_interval": "often",
    "prometheus_memory_limit": "64m",
    "prometheus_alert_5xx_ratio": "5",
}


def test_bad_prometheus_values_are_refused_naming_each_variable():
    args = [arg for name, value in BAD_VALUES.items() for arg in ("-e", f"{name}={value}")]
    labels = '{"prometheus_external_labels": {"bad-label": "x"}}'
    result = playbook("playbooks/validate.yml", *args, "-e", labels)
    output = " ".join((result.stdout + result.stderr).split())
    assert result.returncode != 0, tail(result)
    for name in [*BAD_VALUES, "prometheus_external_labels"]:
        assert f"{name}: " in output, (name, tail(result))
    assert all(c["changed"] == 0 for c in recap(result.stdout).values())


def test_a_value_of_the_wrong_type_is_refused_by_the_argument_spec():
    result = playbook("playbooks/validate.yml", "-e", "prometheus_query_max_samples=many")
    output = " ".join((result.stdout + result.stderr).split())
    assert result.returncode != 0, tail(result)
    assert "prometheus_query_max_samples" in output, tail(result)


def test_the_development_password_of_the_exporter_login_is_refused_in_production():
    result = playbook("playbooks/validate.yml", "-e", "whatsapp_environment=production")
    assert result.returncode != 0
    assert "prometheus_postgres_exporter_password still has a development default" in result.stdout
