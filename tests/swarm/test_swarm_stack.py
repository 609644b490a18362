"""Layer 6, Swarm: the whole stack deployed by `site.yml -i inventories/swarm` onto the
three-node swarm lab, by the same roles (each role's container spec becomes a Swarm
service). Through nginx on the cluster's entry (127.0.0.1:18080): the contract's flows with
chat and gateway replicas on different nodes, a message reaching sockets held by chat tasks
on two nodes, and under steady traffic a drained node and a killed worker engine with no
acknowledged message lost."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections import Counter
from collections.abc import Callable

import pytest
import stack_client
from conftest import ROOT, fast_path, playbook, run, secrets_shown_in, tail
from stack_client import User
from traffic import Traffic

from swarm.conftest import (
    INVENTORY_VARS,
    MANAGER,
    NODES,
    SWARM_INVENTORY,
    TIMINGS,
    changed,
    docker,
    lab_playbook,
    service_tasks,
    wait_for_the_images,
)

pytestmark = pytest.mark.docker

ENTRY = f"127.0.0.1:{INVENTORY_VARS['nginx_http_port']}"
SERVICES = {
    "whatsapp-postgres": 1,
    "whatsapp-mongodb": 1,
    "whatsapp-redis": 1,
    "whatsapp-rabbitmq": 1,
    "whatsapp-user": 1,
    "whatsapp-chat": INVENTORY_VARS["chat_replicas"],
    "whatsapp-message-processor": 1,
    "whatsapp-scheduled-jobs": 1,
    "whatsapp-notification": 1,
    "whatsapp-gateway": INVENTORY_VARS["gateway_replicas"],
    "whatsapp-nginx": 1,
    "whatsapp-prometheus": 1,
    "whatsapp-postgres-exporter": 1,
    "whatsapp-redis-exporter": 1,
}
STORES = ["whatsapp-postgres", "whatsapp-mongodb", "whatsapp-redis", "whatsapp-rabbitmq"]
DATA_NODE = next(node["name"] for node in NODES if node.get("labels", {}).get("data") == "true")
WORKERS = [node for node in NODES if node["role"] == "worker"]


@pytest.fixture(scope="session")
def swarm_stack(swarm_lab):
    """The stack deployed once onto the lab with the README's deploy command's playbook."""
    if os.environ.get("WHATSAPP_SWARM_DEPLOYED") == "1":
        return subprocess.CompletedProcess(["(deployed by hand)"], 0, "whatsapp-chat.1@ (by hand)", "")
    wait_for_the_images()
    result = lab_playbook("site.yml", log="swarm-deploy-1.log", timing="swarm-deploy-cold", timeout=2400)
    assert result.returncode == 0, tail(result, 120)
    return result


@pytest.fixture(autouse=True)
def through_the_entry(monkeypatch):
    """stack_client talks to the cluster's nginx instead of the single host's."""
    monkeypatch.setattr(stack_client, "API", f"http://{ENTRY}/api/v1")
    monkeypatch.setattr(stack_client, "WS_URL", f"ws://{ENTRY}/ws")


def services() -> dict[str, str]:
    """Replicas ("running/desired") of every service, from the manager."""
    out = docker(MANAGER, "service", "ls", "--format", "{{.Name}} {{.Replicas}}")
    return dict(line.split(" ", 1) for line in out.splitlines() if line.strip())


def ready_nodes() -> set[str]:
    out = docker(MANAGER, "node", "ls", "--format", "{{.Hostname}} {{.Status}}")
    return {line.split()[0] for line in out.splitlines() if line.split()[1:] == ["Ready"]}


def converged() -> bool:
    """Every service runs as many healthy tasks as asked, all on nodes that are up (a down
    node's tasks still count in `docker service ls` until it comes back)."""
    up = ready_nodes()
    for name, count in SERVICES.items():
        running = [
            task
            for task in service_tasks(name)
            if task["CurrentState"].startswith("Running") and task["Node"] in up
        ]
        if len(running) != count:
            return False
    return True


def wait_converged(timeout: float = 300) -> float:
    """Seconds until converged(); on 2 cores shared with other work a store's task can be
    restarted on the way (Swarm replaces a task whose health check keeps failing)."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if converged():
            return time.monotonic() - start
        time.sleep(1)
    history = "\n".join(
        docker(
            MANAGER,
            "service",
            "ps",
            "--no-trunc",
            "--format",
            "{{.Name}} {{.Node}} {{.DesiredState}} {{.CurrentState}} {{.Error}}",
            name,
            check=False,
        )
        for name in SERVICES
    )
    raise AssertionError(f"services not back to full strength after {timeout} s: {services()}\n{history}")


def task_nodes(service: str) -> Counter:
    return Counter(
        task["Node"] for task in service_tasks(service) if task["CurrentState"].startswith("Running")
    )


def open_sockets_per_node(service: str = "whatsapp-chat") -> dict[str, float]:
    """whatsapp_websocket_connections of each running chat task, asked inside its container."""
    counts: dict[str, float] = {}
    for node in NODES:
        ids = docker(node, "ps", "-q", "--filter", f"label=com.docker.swarm.service.name={service}").split()
        for container in ids:
            text = docker(
                node,
                "exec",
                container,
                "python3",
                "-c",
                "import urllib.request; print(urllib.request.urlopen('http://127.0.0.1:8082/metrics').read().decode())",
            )
            value = sum(
                float(line.split()[-1])
                for line in text.splitlines()
                if line.startswith("whatsapp_websocket_connections")
            )
            counts[node["name"]] = counts.get(node["name"], 0) + value
    return counts


def test_site_deploys_every_service_healthy_across_the_nodes(swarm_stack):
    assert converged(), services()
    for store in STORES:
        assert set(task_nodes(store)) == {DATA_NODE}, f"{store} is not on the data node"
    assert set(task_nodes("whatsapp-nginx")) == {DATA_NODE}
    # The stateless replicas are spread: chat and gateway each run on two different nodes.
    for service in ("whatsapp-chat", "whatsapp-gateway"):
        nodes = task_nodes(service)
        assert len(nodes) >= 2, f"{service} tasks all on one node: {nodes}"
    # The summary table lists each task's container with the node it runs on.
    assert "whatsapp-chat.1@" in swarm_stack.stdout or "whatsapp-chat.2@" in swarm_stack.stdout
    # Limits come from the same variables as on one host.
    spec = json.loads(docker(MANAGER, "service", "inspect", "whatsapp-chat"))[0]["Spec"]
    assert spec["TaskTemplate"]["Resources"]["Limits"]["MemoryBytes"] > 0
    assert spec["EndpointSpec"]["Mode"] == "dnsrr"
    assert spec["UpdateConfig"]["Order"] == "start-first"
    assert spec["UpdateConfig"]["FailureAction"] == "rollback"
    # Secrets are Docker secrets, files for the task's user only; no service spec shows a value.
    for service in SERVICES:
        leaked = secrets_shown_in(docker(MANAGER, "service", "inspect", service), "swarm")
        assert not leaked, f"{service}: docker service inspect shows {leaked}"
    user = json.loads(docker(MANAGER, "service", "inspect", "whatsapp-user"))[0]["Spec"]["TaskTemplate"]
    files = {s["File"]["Name"].rsplit("/", 1)[-1]: s["File"] for s in user["ContainerSpec"]["Secrets"]}
    assert {"jwt_private_key", "postgres_dsn", "redis_url"} <= set(files), files
    assert all(f["Mode"] == 0o400 and f["UID"] == "10001" for f in files.values()), files
    # Only nginx publishes a port: the stores and Prometheus stay on the overlays (the roles
    # administered them from inside their tasks).
    published = {
        service: ports
        for service in SERVICES
        if (
            ports := json.loads(docker(MANAGER, "service", "inspect", service))[0]["Spec"]
            .get("EndpointSpec", {})
            .get("Ports")
        )
    }
    assert set(published) == {"whatsapp-nginx"}, published


def task_get(service: str, url: str) -> str:
    """GET `url` from inside the one running task of `service` (its own wget), on its node."""
    (node_name,) = task_nodes(service)
    node = next(n for n in NODES if n["name"] == node_name)
    label = f"label=com.docker.swarm.service.name={service}"
    (container,) = docker(node, "ps", "-q", "--filter", label).split()
    return docker(node, "exec", container, "wget", "-q", "-O", "-", url)


def test_prometheus_scrapes_every_task_of_every_service(swarm_stack):
    """On Swarm, Prometheus finds each service's tasks through Docker's DNS (tasks.<service>):
    both chat and both gateway tasks are targets, and every target is up. Read inside its
    task: Prometheus is not published."""
    deadline = time.monotonic() + 120
    while True:
        answer = task_get("whatsapp-prometheus", "http://127.0.0.1:9090/api/v1/targets")
        targets = json.loads(answer)["data"]["activeTargets"]
        jobs = Counter(t["labels"]["job"] for t in targets)
        down = [(t["labels"]["job"], t["scrapeUrl"], t["lastError"]) for t in targets if t["health"] != "up"]
        wanted = (
            jobs["chat"] == INVENTORY_VARS["chat_replicas"]
            and jobs["gateway"] == INVENTORY_VARS["gateway_replicas"]
        )
        if (wanted and not down) or time.monotonic() > deadline:
            break
        time.sleep(3)
    assert jobs["chat"] == INVENTORY_VARS["chat_replicas"], jobs
    assert jobs["gateway"] == INVENTORY_VARS["gateway_replicas"], jobs
    for job in (
        "user",
        "message_processor",
        "notification",
        "scheduled_jobs",
        "rabbitmq",
        "postgres",
        "redis",
    ):
        assert jobs[job] >= 1, jobs
    assert not down, down


def test_second_deploy_changes_nothing(swarm_stack):
    """As operators run it: the fast path reads every node's tasks, finds each role's
    recorded tasks running and healthy, and skips every role (swarm_cluster's tasks all run:
    changed=0 holds for them too). Then every task of one role of each kind runs again (a
    store pinned to the data node, replicated stateless chat, nginx published on the
    entry): changed=0."""
    again = lab_playbook("site.yml", log="swarm-deploy-2.log", timing="swarm-deploy-warm", timeout=1800)
    assert changed(again) == 0, tail(again, 120)
    skipped, selected = fast_path(again.stdout)
    assert skipped == selected == len(stack_client.GROUP_VARS["whatsapp_roles"]), tail(again, 40)

    kinds = lab_playbook(
        "site.yml",
        "--tags",
        "postgres,chat,nginx",
        "-e",
        "whatsapp_deploy_fast_path=false",
        log="swarm-deploy-2-kinds.log",
        timing="swarm-deploy-warm-every-task-3-roles",
        timeout=1800,
    )
    assert changed(kinds) == 0, tail(kinds, 120)
    for service in ("whatsapp-postgres", "whatsapp-chat", "whatsapp-nginx"):
        assert f"Create or update the Swarm service {service}" in kinds.stdout, service


@pytest.mark.swarm_operations
def test_second_deploy_with_every_task_changes_nothing(swarm_stack):
    again = lab_playbook(
        "site.yml",
        "-e",
        "whatsapp_deploy_fast_path=false",
        log="swarm-deploy-2-full.log",
        timing="swarm-deploy-warm-every-task",
        timeout=1800,
    )
    assert changed(again) == 0, tail(again, 120)
    assert fast_path(again.stdout)[0] == 0, tail(again, 40)


def history_bodies(user: User, conversation: str, done: Callable[[list[str]], bool]) -> list[str]:
    """The bodies in a conversation's history, read again until `done` holds or 30 s passed:
    message_processor stores a message a moment after chat acknowledged it."""
    deadline = time.monotonic() + 30
    bodies = [m["body"] for m in user.history(conversation)]
    while not done(bodies) and time.monotonic() < deadline:
        time.sleep(0.5)
        bodies = [m["body"] for m in user.history(conversation)]
    return bodies


def test_contract_flows_and_messages_across_nodes(swarm_stack):
    alice, bob = User("Alice on the swarm"), User("Bob on the swarm")
    conversation = alice.direct_with(bob)
    # Bob's devices: nginx balances the sockets over the chat tasks on different nodes.
    sockets = [bob.socket() for _ in range(8)]
    try:
        per_node = open_sockets_per_node()
        assert len([n for n, count in per_node.items() if count > 0]) >= 2, per_node
        sent = alice.api.call(
            "POST",
            f"/conversations/{conversation}/messages",
            {"client_msg_id": "swarm-1", "body": "across nodes"},
        )
        assert sent.status_code in (200, 201), sent.text
        message_id = sent.json()["id"]
        for sock in sockets:
            frame = sock.wait_for(lambda f: f.get("type") == "message.new", timeout=15)
            assert frame["message"]["id"] == message_id
        # Over a WebSocket, through whichever chat task alice lands on.
        with alice.socket() as alice_socket:
            ack = alice_socket.send_message(conversation, "and back", client_msg_id="swarm-2")
            assert ack["type"] == "message.ack"
        bodies = history_bodies(bob, conversation, lambda b: b[-2:] == ["across nodes", "and back"])
        assert bodies[-2:] == ["across nodes", "and back"]
    finally:
        for sock in sockets:
            sock.close()


def test_drain_and_worker_loss_lose_no_acknowledged_message(swarm_stack):
    traffic = Traffic.start("Swarm ")
    drained, killed = WORKERS[0], WORKERS[-1]
    try:
        time.sleep(5)
        # Drain: the node's tasks move to the others.
        start = time.monotonic()
        docker(MANAGER, "node", "update", "--availability", "drain", drained["name"])
        deadline = time.monotonic() + 120
        while any(drained["name"] in task_nodes(s) for s in SERVICES) and time.monotonic() < deadline:
            time.sleep(1)
        TIMINGS["swarm-drain-moved"] = time.monotonic() - start
        wait_converged()
        TIMINGS["swarm-drain-converged"] = time.monotonic() - start
        assert not any(drained["name"] in task_nodes(s) for s in SERVICES)
        docker(MANAGER, "node", "update", "--availability", "active", drained["name"])
        time.sleep(5)

        # Node loss: the worker's engine is killed (its container SIGKILLed) with its tasks.
        had_tasks = [s for s in SERVICES if killed["name"] in task_nodes(s)]
        start = time.monotonic()
        subprocess.run(["docker", "kill", killed["name"]], check=True, capture_output=True)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            state = docker(
                MANAGER, "node", "inspect", killed["name"], "--format", "{{.Status.State}}"
            ).strip()
            if state == "down":
                break
            time.sleep(1)
        TIMINGS["swarm-node-marked-down"] = time.monotonic() - start
        assert state == "down"
        wait_converged()
        TIMINGS["swarm-node-loss-rescheduled"] = time.monotonic() - start
        assert not any(killed["name"] in task_nodes(s) for s in SERVICES)
        time.sleep(5)
    finally:
        traffic.stop.set()
        for sender in traffic.senders:
            sender.join(timeout=30)
        subprocess.run(["docker", "start", killed["name"]], capture_output=True, check=False)
    print(f"tasks on the killed node: {had_tasks}")
    counts = nothing_lost(traffic)
    print(counts)

    # The stack is whole again and the health table is green on the swarm too.
    check = run(
        ["ansible-playbook", "-i", SWARM_INVENTORY, "playbooks/health_check.yml"],
        log="swarm-health-check.log",
    )
    assert check.returncode == 0, tail(check)


def service_logs(service: str, lines: int = 30) -> str:
    """The last lines each task of a service logged, read on the manager (for a failure)."""
    result = run(
        ["docker", "-H", MANAGER["docker_host"], "service", "logs", "--tail", str(lines), service], timeout=60
    )
    return f"--- {service}:\n{result.stdout}{result.stderr}"


def nothing_lost(traffic: Traffic) -> str:
    """traffic.assert_nothing_lost(), with what the message path logged when it fails."""
    try:
        return traffic.assert_nothing_lost()
    except AssertionError as error:
        path = ("whatsapp-message-processor", "whatsapp-chat", "whatsapp-rabbitmq")
        logs = "\n".join(service_logs(name) for name in path)
        raise AssertionError(f"{error}\nservices: {services()}\n{logs}") from None


def service_image(service: str) -> str:
    return docker(
        MANAGER, "service", "inspect", service, "--format", "{{.Spec.TaskTemplate.ContainerSpec.Image}}"
    ).strip()


@pytest.mark.swarm_operations
def test_rolling_update_of_one_service_loses_nothing(swarm_stack):
    """A code change to chat, deployed with --tags chat under steady traffic: its tasks are
    replaced one at a time (start-first) and no acknowledged message is lost. The change is
    not taken back on the cluster (the next test stops and cleans it); the checkout is."""
    before = service_image("whatsapp-chat")
    others = {name: service_image(name) for name in SERVICES if name != "whatsapp-chat"}
    probe = ROOT / "services/chat/_rolling_update_probe.py"
    traffic = Traffic.start("Swarm rolling ")
    try:
        time.sleep(5)
        probe.write_text('"""Written by tests/swarm/test_swarm_stack.py: a code change to chat."""\n')
        forward = lab_playbook(
            "site.yml",
            "--tags",
            "chat",
            log="swarm-rolling-forward.log",
            timing="swarm-rolling-update",
            timeout=1800,
        )
        assert forward.returncode == 0, tail(forward, 80)
        time.sleep(5)
    finally:
        probe.unlink(missing_ok=True)
        traffic.stop.set()
        for sender in traffic.senders:
            sender.join(timeout=30)
    assert service_image("whatsapp-chat") != before, "chat's image did not change"
    assert {name: service_image(name) for name in others} == others, "another service was updated"
    update = docker(
        MANAGER, "service", "inspect", "whatsapp-chat", "--format", "{{.UpdateStatus.State}}"
    ).strip()
    assert update == "completed"
    wait_converged()
    counts = nothing_lost(traffic)
    print(f"rolling update of whatsapp-chat under traffic: {counts}")


@pytest.mark.swarm_operations
def test_stop_start_and_clean_work_on_the_swarm(swarm_stack):
    """stop scales every service to 0 and keeps the data; start brings every service back
    healthy with the data; clean removes the services, the overlays and (asked) the volumes."""
    alice, bob = User("swarm-keep-alice"), User("swarm-keep-bob")
    conversation = bob.direct_with(alice)
    sent = bob.api.call(
        "POST", f"/conversations/{conversation}/messages", {"client_msg_id": "keep-1", "body": "kept"}
    )
    assert sent.status_code == 201, sent.text
    assert history_bodies(alice, conversation, bool) == ["kept"], "not stored before the stop"

    stop = playbook("playbooks/stop.yml", inventory=SWARM_INVENTORY, log="swarm-stop.log", timeout=900)
    assert stop.returncode == 0, tail(stop, 60)
    # "0/0", or "0/0 (max 1 per node)" for the stores.
    assert all(replicas.split()[0] == "0/0" for replicas in services().values()), services()
    for node in NODES:
        assert docker(node, "ps", "-q", "--filter", "label=com.whatsapp.stack=whatsapp").strip() == ""

    start = time.monotonic()
    started = playbook("playbooks/start.yml", inventory=SWARM_INVENTORY, log="swarm-start.log", timeout=1800)
    TIMINGS["swarm-start"] = time.monotonic() - start
    assert started.returncode == 0, tail(started, 60)
    assert converged(), services()
    # Right after start, a request may still meet a 503 while the services' connection pools
    # and nginx's DNS settle: a client retries; measured, and bounded at 60 s.
    deadline = time.monotonic() + 60
    while True:
        answer = alice.api.call("GET", f"/conversations/{conversation}/messages")
        if answer.status_code == 200 or time.monotonic() > deadline:
            break
        time.sleep(1)
    TIMINGS["swarm-start-api-answers"] = time.monotonic() - start
    assert answer.status_code == 200, (
        f"{answer.status_code} {answer.text} (request {answer.headers.get('X-Request-ID')}); "
        f"services: {services()}\n{service_logs('whatsapp-nginx')}\n{service_logs('whatsapp-gateway')}"
    )
    assert [m["body"] for m in alice.history(conversation)] == ["kept"]

    volumes_before = {
        node["name"]: docker(
            node, "volume", "ls", "-q", "--filter", "label=com.whatsapp.stack=whatsapp"
        ).split()
        for node in NODES
    }
    assert any(volumes_before.values())
    kept = playbook("playbooks/clean.yml", inventory=SWARM_INVENTORY, log="swarm-clean.log", timeout=900)
    assert kept.returncode == 0, tail(kept, 60)
    assert services() == {}
    networks = docker(MANAGER, "network", "ls", "--format", "{{.Name}}").split()
    overlays = {
        stack_client.GROUP_VARS["whatsapp_frontend_network"],
        stack_client.GROUP_VARS["whatsapp_backend_network"],
    }
    assert not overlays & set(networks)
    for node in NODES:
        left = docker(node, "volume", "ls", "-q", "--filter", "label=com.whatsapp.stack=whatsapp").split()
        assert left == volumes_before[node["name"]]
    gone = playbook(
        "playbooks/clean.yml",
        "-e",
        "clean_volumes=true",
        inventory=SWARM_INVENTORY,
        log="swarm-clean-all.log",
    )
    assert gone.returncode == 0, tail(gone, 60)
    for node in NODES:
        assert (
            docker(node, "volume", "ls", "-q", "--filter", "label=com.whatsapp.stack=whatsapp").strip() == ""
        )
