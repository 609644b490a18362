"""The container role's data transforms (plugins/filter/container.py)."""

from __future__ import annotations

import importlib.util

import pytest
import yaml
from ansible.errors import AnsibleFilterError
from conftest import ROOT

spec = importlib.util.spec_from_file_location("container_filters", ROOT / "plugins/filter/container.py")
filters = importlib.util.module_from_spec(spec)
spec.loader.exec_module(filters)

DEFAULTS = yaml.safe_load((ROOT / "roles/container/defaults/main.yml").read_text())["container_defaults"]

SPEC = {
    "name": "whatsapp-chat",
    "role": "chat",
    "hostname": "chat",
    "image": "whatsapp/service:abc",
    "command": ["gunicorn", "--bind=0.0.0.0:8082", "services.chat:create_app()"],
    "env": {"WHATSAPP_LOG_LEVEL": "INFO", "A": "1"},
    "published_ports": ["127.0.0.1:8082:8082"],
    "mounts": [
        {"type": "volume", "source": "whatsapp-data", "target": "/data"},
        {"type": "bind", "source": "/etc/x", "target": "/etc/x", "read_only": True},
    ],
    "healthcheck": {"test": ["CMD", "true"], "timeout": "10s"},
    "labels": {"com.whatsapp.port": 8082},
    "tmpfs": ["/tmp", "/run:size=1m"],
}


def test_merge_puts_the_policy_under_the_spec_and_the_spec_wins():
    merged = filters.container_merge(DEFAULTS, SPEC)
    # Dicts merge key by key: the spec's probe and timeout, the stack's interval and retries.
    assert merged["healthcheck"]["test"] == ["CMD", "true"]
    assert merged["healthcheck"]["timeout"] == "10s"
    assert merged["healthcheck"]["interval"] == DEFAULTS["healthcheck"]["interval"]
    assert merged["labels"] == {
        "com.whatsapp.stack": DEFAULTS["labels"]["com.whatsapp.stack"],
        "com.whatsapp.version": DEFAULTS["labels"]["com.whatsapp.version"],
        "com.whatsapp.role": "chat",
        "com.whatsapp.port": 8082,
    }
    assert merged["security_opts"] == ["no-new-privileges"]
    assert merged["cap_drop"] == ["ALL"]
    assert merged["log_driver"] == "json-file"
    assert set(merged["log_options"]) == {"max-size", "max-file"}
    # Nothing of the spec is lost, and neither input is changed.
    assert all(merged[key] == value for key, value in SPEC.items() if key not in ("healthcheck", "labels"))
    assert "interval" not in SPEC["healthcheck"]
    assert "com.whatsapp.role" not in DEFAULTS["labels"]


def test_merge_replaces_lists_and_keeps_a_spec_role_label():
    merged = filters.container_merge(
        DEFAULTS, {**SPEC, "cap_drop": ["NET_RAW"], "labels": {"com.whatsapp.role": "x"}}
    )
    assert merged["cap_drop"] == ["NET_RAW"]
    assert merged["labels"]["com.whatsapp.role"] == "x"


def test_merge_of_a_spec_without_a_role_adds_no_role_label():
    assert "com.whatsapp.role" not in filters.container_merge(DEFAULTS, {"name": "n"})["labels"]


def test_the_inventorys_fields_for_a_role_go_over_its_spec():
    overrides = {"chat": {"memory": "2g", "env": {"WHATSAPP_LOG_LEVEL": "DEBUG"}}, "user": {"memory": "9g"}}
    merged = filters.container_merge(DEFAULTS, SPEC, overrides)
    assert merged["memory"] == "2g" and merged["env"]["WHATSAPP_LOG_LEVEL"] == "DEBUG"
    assert {k: v for k, v in merged["env"].items() if k != "WHATSAPP_LOG_LEVEL"} == {
        k: v for k, v in SPEC["env"].items() if k != "WHATSAPP_LOG_LEVEL"
    }
    assert filters.container_merge(DEFAULTS, SPEC, {"user": {"memory": "9g"}}) == filters.container_merge(
        DEFAULTS, SPEC
    )


def test_dev_mode_mounts_the_code_and_reloads_through_devmode():
    dev = filters.container_dev_mode(SPEC, "/src/services")
    assert dev["mounts"][-1] == {
        "type": "bind",
        "source": "/src/services",
        "target": "/app/services",
        "read_only": True,
    }
    assert dev["mounts"][:-1] == SPEC["mounts"]
    assert dev["command"] == [
        "gunicorn",
        "--reload",
        "--bind=0.0.0.0:8082",
        "services.common.devmode:create_app('chat')",
    ]
    assert dev["env"] == {"WHATSAPP_LOG_LEVEL": "DEBUG", "A": "1"}
    assert dev["labels"]["com.whatsapp.dev-mode"] == "true"
    assert SPEC["env"]["WHATSAPP_LOG_LEVEL"] == "INFO"


def test_dev_mode_runs_a_worker_process_under_gunicorn_reload():
    spec = {**SPEC, "command": ["python", "-m", "services.message_processor", "--port=8085"]}
    command = filters.container_dev_mode(spec, "/s")["command"]
    assert command[:3] == ["gunicorn", "--reload", "--bind=0.0.0.0:8085"]
    assert command[-1] == "services.common.devmode:create_app('message_processor')"
    with pytest.raises(AnsibleFilterError, match="no --port"):
        filters.container_dev_mode({**SPEC, "command": ["python", "-m", "services.notification"]}, "/s")


def test_dev_mode_leaves_a_command_that_is_not_gunicorn():
    assert filters.container_dev_mode({**SPEC, "command": ["python", "-m", "x"]}, "/s")["command"] == [
        "python",
        "-m",
        "x",
    ]


@pytest.mark.parametrize(
    ("count", "names"),
    [(0, []), (1, ["whatsapp-chat"]), ("3", ["whatsapp-chat", "whatsapp-chat-2", "whatsapp-chat-3"])],
)
def test_replica_names(count, names):
    assert filters.container_replica_names("whatsapp-chat", count) == names


def test_replicas_keep_the_first_name_and_count_ports_and_hostnames_up():
    first = filters.container_replica(SPEC, 1)
    third = filters.container_replica(SPEC, "3")
    stepped = filters.container_replica(SPEC, 3, "100")
    assert stepped["published_ports"] == ["127.0.0.1:8282:8082"]
    assert (first["name"], first["hostname"], first["published_ports"]) == (
        "whatsapp-chat",
        "chat-1",
        ["127.0.0.1:8082:8082"],
    )
    assert (third["name"], third["hostname"], third["published_ports"]) == (
        "whatsapp-chat-3",
        "chat-3",
        ["127.0.0.1:8084:8082"],
    )
    assert third["env"] == SPEC["env"] and SPEC["name"] == "whatsapp-chat"


def test_swarm_publishes_in_host_mode_only_the_roles_that_publish():
    assert filters.swarm_publish(SPEC, ["nginx"]) == []
    assert filters.swarm_publish({**SPEC, "published_ports": ["0.0.0.0:80:8080", "443:8443"]}, ["chat"]) == [
        {"published_port": 80, "target_port": 8080, "protocol": "tcp", "mode": "host"},
        {"published_port": 443, "target_port": 8443, "protocol": "tcp", "mode": "host"},
    ]


def test_swarm_mounts_label_volumes_and_turn_tmpfs_and_shm_into_mounts():
    mounts = filters.swarm_mounts({**SPEC, "shm_size": "64m"}, "whatsapp")
    assert mounts == [
        {
            "type": "volume",
            "source": "whatsapp-data",
            "target": "/data",
            "readonly": False,
            "labels": {"com.whatsapp.stack": "whatsapp", "com.whatsapp.role": "chat"},
        },
        {"type": "bind", "source": "/etc/x", "target": "/etc/x", "readonly": True},
        {"type": "tmpfs", "target": "/tmp"},
        {"type": "tmpfs", "target": "/run"},
        {"type": "tmpfs", "target": "/dev/shm", "tmpfs_size": "64m"},
    ]


def test_ansible_finds_every_filter():
    assert set(filters.FilterModule().filters()) == {
        "container_merge",
        "container_dev_mode",
        "container_replica",
        "container_replica_names",
        "swarm_publish",
        "swarm_mounts",
        "python_service",
        "of_roles",
    }


STACK = [
    {"name": "whatsapp-postgres", "role": "postgres"},
    {"name": "whatsapp-chat", "role": "chat"},
    {"name": "whatsapp-chat-2", "role": "chat"},
    {"name": "whatsapp-nginx", "role": "nginx"},
]


def test_of_roles_keeps_the_order_of_the_items_and_takes_all_when_no_role_is_named():
    assert filters.of_roles(STACK, []) == STACK
    assert filters.of_roles(STACK, None) == STACK
    assert [c["name"] for c in filters.of_roles(STACK, ["nginx", "chat"])] == [
        "whatsapp-chat",
        "whatsapp-chat-2",
        "whatsapp-nginx",
    ]
    assert filters.of_roles(STACK, ["grafana"]) == []


def test_of_roles_refuses_a_string_which_would_match_by_letters():
    with pytest.raises(AnsibleFilterError, match="list of role names"):
        filters.of_roles(STACK, "chat")


LAYER = {
    "user": "10001:10001",
    "publish_address": "127.0.0.1",
    "env": {"WHATSAPP_VERSION": "0.1.0", "WHATSAPP_LOG_LEVEL": "INFO"},
    "read_only": True,
    "tmpfs": ["/tmp"],
    "stop_timeout": 20,
}
SERVICE = {
    "name": "whatsapp-user",
    "role": "user",
    "hostname": "user",
    "port": 8081,
    "host_port": 8081,
    "command": ["gunicorn", "services.user:create_app()"],
    "env": {"WHATSAPP_LOG_LEVEL": "DEBUG", "WHATSAPP_BCRYPT_COST": "10"},
    "secrets": {"postgres_dsn": "postgresql://...", "jwt_private_key": "-----BEGIN"},
    "networks": [{"name": "whatsapp-backend", "aliases": ["user"]}],
}


def test_a_python_service_spec_is_its_own_dict_over_the_shared_layer():
    spec = filters.python_service(SERVICE, LAYER)
    assert spec["env"] == {
        "WHATSAPP_VERSION": "0.1.0",
        "WHATSAPP_LOG_LEVEL": "DEBUG",  # the service's own value wins
        "WHATSAPP_BCRYPT_COST": "10",
        "WHATSAPP_POSTGRES_DSN_FILE": "/run/secrets/postgres_dsn",
        "WHATSAPP_JWT_PRIVATE_KEY_FILE": "/run/secrets/jwt_private_key",
    }
    assert spec["published_ports"] == ["127.0.0.1:8081:8081"]
    assert spec["labels"] == {"com.whatsapp.port": 8081}
    probe = spec["healthcheck"]["test"]
    assert probe[:3] == ["CMD", "bash", "-c"] and "8081" in probe[3] and "/health" in probe[3]
    shared = (spec["user"], spec["read_only"], spec["tmpfs"], spec["stop_timeout"])
    assert shared == ("10001:10001", True, ["/tmp"], 20)
    assert "port" not in spec and "host_port" not in spec and "publish_address" not in spec
    assert spec["secrets"] == SERVICE["secrets"] and SERVICE["env"]["WHATSAPP_LOG_LEVEL"] == "DEBUG"
    assert filters.python_service({**SERVICE, "stop_timeout": 60}, LAYER)["stop_timeout"] == 60


def test_a_python_service_without_its_port_is_refused_by_name():
    service = {k: v for k, v in SERVICE.items() if k != "host_port"}
    with pytest.raises(AnsibleFilterError, match="whatsapp-user has no 'host_port'"):
        filters.python_service(service, LAYER)
