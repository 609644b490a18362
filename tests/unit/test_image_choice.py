"""docker_host's image choice: the comparison filter, and its table of store volumes."""

from __future__ import annotations

import importlib.util

import pytest
import yaml
from ansible.errors import AnsibleFilterError
from conftest import ROOT

spec = importlib.util.spec_from_file_location("image_choice", ROOT / "plugins/filter/image_choice.py")
image_choice = importlib.util.module_from_spec(spec)
spec.loader.exec_module(image_choice)

BUILD = {"postgres": "PostgreSQL 15", "mongodb": "SecantusDB 0.7", "redis": "Redis 7.0"}


def test_no_change_when_every_recorded_server_is_the_wanted_one():
    assert image_choice.store_server_changes(BUILD, dict(BUILD)) == []


def test_each_changed_store_is_named_with_both_servers():
    upstream = {"postgres": "PostgreSQL 15", "mongodb": "MongoDB 7.0", "redis": "Redis 7.2"}
    assert image_choice.store_server_changes(BUILD, upstream) == [
        {"store": "mongodb", "was": "SecantusDB 0.7", "now": "MongoDB 7.0"},
        {"store": "redis", "was": "Redis 7.0", "now": "Redis 7.2"},
    ]


def test_a_store_missing_on_either_side_is_no_change():
    assert image_choice.store_server_changes({"redis": "Redis 7.0"}, {"postgres": "PostgreSQL 16"}) == []


def test_a_record_that_is_not_a_dict_is_refused():
    with pytest.raises(AnsibleFilterError, match="two dicts"):
        image_choice.store_server_changes("build", BUILD)


def test_the_store_volumes_docker_host_names_are_the_store_roles_volumes():
    named = yaml.safe_load((ROOT / "roles/docker_host/defaults/main.yml").read_text())[
        "docker_host_store_volumes"
    ]
    for store, volume in named.items():
        defaults = yaml.safe_load((ROOT / f"roles/{store}/defaults/main.yml").read_text())
        assert defaults[f"{store}_data_volume"] == volume, store


def test_every_store_has_a_server_for_both_sources_and_a_change_note():
    servers = yaml.safe_load((ROOT / "group_vars/all/versions.yml").read_text())["whatsapp_store_servers"]
    defaults = yaml.safe_load((ROOT / "roles/docker_host/defaults/main.yml").read_text())
    stores = set(defaults["docker_host_store_volumes"])
    assert set(servers["build"]) == set(servers["upstream"]) == stores
    assert set(defaults["docker_host_store_change_paths"]) == stores
