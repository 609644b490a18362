"""Layer 6: the multi-node cluster layer on the swarm lab (inventories/swarm).

Three Docker engines in containers (playbooks/swarm_lab.yml) made one swarm by
roles/swarm_cluster: nodes Ready with their labels, overlay
traffic between tasks on different nodes, and images streamed to every node once (the
second run of swarm_cluster is checked by the second site.yml run in test_swarm_stack)."""

from __future__ import annotations

import json
import re
import time

import pytest

from swarm.conftest import (
    BACKEND_NETWORK,
    GROUP_VARS,
    MANAGER,
    NODES,
    TIMINGS,
    changed,
    docker,
    service_tasks,
)

pytestmark = pytest.mark.docker

PROBE_SERVICE = "swarm-probe"
PROBE_PORT = 7000
# Every connection gets the answering task's hostname (its container's short ID).
PROBE_SERVER = (
    "use IO::Socket::INET; my $s = IO::Socket::INET->new(LocalPort => "
    f"{PROBE_PORT}, Listen => 5, ReuseAddr => 1)"
    " or die $!; while (my $c = $s->accept) { print $c `hostname`; close $c }"
)
# Connect to one address and print what it says.
PROBE_CLIENT = (
    "use IO::Socket::INET; my $c = IO::Socket::INET->new(PeerAddr => $ARGV[0], PeerPort => "
    f"{PROBE_PORT}, Timeout => 5)"
    " or die qq(connect $ARGV[0]: $!\\n); print <$c>"
)


def test_every_node_is_ready_with_its_role_and_labels(swarm_lab):
    assert changed(swarm_lab.lab_up) > 0 and changed(swarm_lab.cluster_up) > 0
    ids = docker(MANAGER, "node", "ls", "-q").split()
    nodes = {
        node["Description"]["Hostname"]: node for node in json.loads(docker(MANAGER, "node", "inspect", *ids))
    }
    assert sorted(nodes) == sorted(node["name"] for node in NODES), nodes.keys()
    for declared in NODES:
        node = nodes[declared["name"]]
        assert node["ID"] == swarm_lab.node_ids[declared["name"]]
        assert node["Status"]["State"] == "ready", (declared["name"], node["Status"])
        assert node["Spec"]["Role"] == declared["role"], declared["name"]
        assert node["Spec"]["Availability"] == "active", declared["name"]
        assert (node["Spec"].get("Labels") or {}) == (declared.get("labels") or {}), declared["name"]
    roles = [node["Spec"]["Role"] for node in nodes.values()]
    assert roles.count("manager") == 1 and roles.count("worker") == 2, roles
    assert nodes["whatsapp-swarm-node1"]["Spec"]["Labels"].get("data") == "true"


def test_the_overlay_networks_span_the_swarm(swarm_lab):  # noqa: ARG001 (needs the lab)
    for network in ("whatsapp_frontend_network", "whatsapp_backend_network"):
        name = GROUP_VARS[network]
        data = json.loads(docker(MANAGER, "network", "inspect", name))[0]
        assert data["Driver"] == "overlay" and data["Scope"] == "swarm" and data["Attachable"], data


def test_distribute_image_loads_once_on_every_node(distributed_image):
    first_log = distributed_image.first.stdout
    assert changed(distributed_image.first) > 0
    for node in NODES:
        assert re.search(rf"changed: \[localhost\] => \(item={re.escape(node['name'])}\)", first_log), node
        node_id = docker(node, "image", "inspect", "-f", "{{.Id}}", distributed_image.image).strip()
        assert node_id == distributed_image.image_id, node["name"]
    assert changed(distributed_image.second) == 0, "the second distribution loaded the image again"


def test_tasks_on_different_workers_talk_over_the_backend_overlay(distributed_image):
    docker(MANAGER, "service", "rm", PROBE_SERVICE, check=False)
    start = time.monotonic()
    docker(
        MANAGER,
        "service",
        "create",
        "--detach",
        "--name",
        PROBE_SERVICE,
        "--replicas",
        "2",
        "--replicas-max-per-node",
        "1",
        "--constraint",
        "node.role==worker",
        "--network",
        BACKEND_NETWORK,
        "--endpoint-mode",
        "dnsrr",
        distributed_image.image,
        "perl",
        "-e",
        PROBE_SERVER,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            tasks = service_tasks(PROBE_SERVICE)
            if len(tasks) == 2 and all(task["CurrentState"].startswith("Running") for task in tasks):
                break
            assert time.monotonic() < deadline, f"the probe's tasks did not run in 60 s: {tasks}"
            time.sleep(1)
        TIMINGS["probe service: 2 tasks running"] = time.monotonic() - start
        workers = [node for node in NODES if node["role"] == "worker"]
        assert sorted(task["Node"] for task in tasks) == sorted(node["name"] for node in workers)

        containers = {}
        for node in workers:
            found = docker(
                node, "ps", "-q", "--filter", f"label=com.docker.swarm.service.name={PROBE_SERVICE}"
            )
            assert len(found.split()) == 1, (node["name"], found)
            containers[node["name"]] = found.split()[0]
        for node in workers:
            me = containers[node["name"]]
            resolved = docker(node, "exec", me, "getent", "ahostsv4", f"tasks.{PROBE_SERVICE}")
            addresses = {line.split()[0] for line in resolved.splitlines()}
            own = docker(node, "exec", me, "hostname", "-i").split()
            others = addresses - set(own)
            assert len(addresses) == 2 and len(others) == 1, (node["name"], addresses, own)
            answer = docker(node, "exec", me, "perl", "-e", PROBE_CLIENT, others.pop(), timeout=30).strip()
            other_node = next(name for name in containers if name != node["name"])
            assert answer == containers[other_node][:12], (node["name"], answer, containers)
    finally:
        docker(MANAGER, "service", "rm", PROBE_SERVICE, check=False)
