"""Bad inventory values fail before anything changes, with the variable named."""

from __future__ import annotations

import json

import pytest
from conftest import playbook, recap, tail

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


@pytest.mark.parametrize(("variable", "value", "named"), BAD_VALUES)
def test_bad_value_fails_naming_the_variable_and_changes_nothing(variable, value, named):
    result = playbook("site.yml", "-e", f"{variable}={value}")
    output = result.stdout + result.stderr
    assert result.returncode != 0, f"{variable}={value} was accepted:\n{tail(result)}"
    assert named in output, tail(result)
    counters = recap(result.stdout)
    assert counters, tail(result)
    assert all(c["changed"] == 0 for c in counters.values()), counters
    # It stopped in the validation play, before the Docker host was touched.
    assert "Prepare the Docker host" not in result.stdout


@pytest.mark.parametrize(
    "overrides",
    [{"chat": {"name": "whatsapp-other"}}, {"chatt": {"memory": "1g"}}, {"chat": "memory=1g"}],
)
def test_bad_container_overrides_fail_naming_the_variable(overrides):
    result = playbook("site.yml", "-e", json.dumps({"whatsapp_container_overrides": overrides}))
    assert result.returncode != 0, f"{overrides} was accepted:\n{tail(result)}"
    assert "whatsapp_container_overrides must map roles" in result.stdout + result.stderr, tail(result)
    assert all(c["changed"] == 0 for c in recap(result.stdout).values())


def test_production_refuses_development_secrets():
    result = playbook("site.yml", "-e", "whatsapp_environment=production")
    assert result.returncode != 0
    assert "redis_password still has a development default" in result.stdout, tail(result)
    assert "Prepare the Docker host" not in result.stdout


def test_good_values_pass_validation():
    result = playbook("playbooks/validate.yml")
    assert result.returncode == 0, tail(result)
    assert recap(result.stdout)["localhost"]["failed"] == 0
