"""Bad inventory values fail before anything changes, with the variable named."""

from __future__ import annotations

import pytest
import yaml
from conftest import ROOT, playbook, tail, validate_each

BAD_VALUES = [
    ("redis_memory_limit", "lots", "redis_memory_limit"),
    ("redis_memory_limit", "512", "redis_memory_limit"),
    ("redis_port", "70000", "redis_port"),
    ("redis_port", "http", "redis_port"),
    ("redis_cpus", "many", "redis_cpus"),
    ("redis_password", "short", "redis_password"),
    ("whatsapp_image_source", "somewhere", "whatsapp_image_source"),
    ("redis_maxmemory_policy", "forget-everything", "redis_maxmemory_policy"),
    ("whatsapp_backend_subnet", "10.0.0.0", "whatsapp_backend_subnet"),
    ("docker_host_engine", "podman", "docker_host_engine"),
    ("chat_replicas", "0", "chat_replicas"),
    ("chat_replicas", "two", "chat_replicas"),
    ("gateway_replicas", "100", "gateway_replicas"),
    ("user_replicas", "0", "user_replicas"),
    ("scheduled_jobs_replicas", "many", "scheduled_jobs_replicas"),
    ("whatsapp_replica_port_step", "1", "whatsapp_replica_port_step"),
    ("whatsapp_container_overrides", "memory=2g", "whatsapp_container_overrides"),
    ("chat_memory_limit", "64m", "chat_memory_limit"),
    ("message_processor_batch_size", "500", "message_processor_batch_size"),
    ("message_processor_concurrency", "0", "message_processor_concurrency"),
    ("whatsapp_environment", "prod", "whatsapp_environment"),
    ("whatsapp_publish_internal_ports", "maybe", "whatsapp_publish_internal_ports"),
    ("whatsapp_public_roles", "nginx", "whatsapp_public_roles"),
    ("nginx_publish_address", "everywhere", "nginx_publish_address"),
    ("whatsapp_deploy_fast_path", "sometimes", "whatsapp_deploy_fast_path"),
]


OVERRIDES = [{"chat": {"name": "whatsapp-other"}}, {"chatt": {"memory": "1g"}}, {"chat": "memory=1g"}]


@pytest.fixture(scope="module")
def refused() -> dict[str, list[str]]:
    """Every bad value above and each bad override, validated in one run (a host each)."""
    cases = {f"bad-value-{i}": {variable: value} for i, (variable, value, _) in enumerate(BAD_VALUES)}
    cases |= {f"bad-override-{i}": {"whatsapp_container_overrides": o} for i, o in enumerate(OVERRIDES)}
    cases["good"] = {}  # the inventory as it is, in the same run: it passes
    return validate_each(cases, log="validate-bad-values.log")


def test_site_validates_before_anything_else():
    """What the validation play refuses, site.yml refuses before it touches a host."""
    site = yaml.safe_load((ROOT / "site.yml").read_text())
    assert site[0]["ansible.builtin.import_playbook"] == "playbooks/validate.yml"


@pytest.mark.parametrize(("case", "variable", "value", "named"), [(i, *v) for i, v in enumerate(BAD_VALUES)])
def test_bad_value_fails_naming_the_variable_and_changes_nothing(refused, case, variable, value, named):
    failure = " | ".join(refused[f"bad-value-{case}"])
    assert failure, f"{variable}={value} was accepted"
    assert named in failure, failure[:2000]


@pytest.mark.parametrize("case", range(len(OVERRIDES)))
def test_bad_container_overrides_fail_naming_the_variable(refused, case):
    failure = " | ".join(refused[f"bad-override-{case}"])
    assert failure, f"{OVERRIDES[case]} was accepted"
    assert "whatsapp_container_overrides must map roles" in failure, failure[:2000]


def test_production_refuses_development_secrets():
    result = playbook("site.yml", "-e", "whatsapp_environment=production")
    assert result.returncode != 0
    assert "redis_password still has a development default" in result.stdout, tail(result)
    assert "Prepare the Docker host" not in result.stdout


def test_good_values_pass_validation(refused):
    assert refused["good"] == []
