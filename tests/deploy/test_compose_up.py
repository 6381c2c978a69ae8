"""deploy/compose.yaml for real, with Debian's docker-compose and the local images
(deploy/compose.local.yaml through docker/local_compose.py): three replicas of the image
built from this tree behind nginx, Prometheus scraping them.

- under load through nginx, `docker kill` of one replica fails no client request;
- Prometheus then reports that replica down and the other two up;
- `compose down` leaves no container, network or volume of the project behind.

Grafana is not started (no Debian package, so no local image); its provisioning is checked
in test_compose.py and test_local_topology.py. Load goes to loopback only, bounded in
time. Skips with the reason when Docker, docker-compose or the fixed ports are missing.
"""

from __future__ import annotations

import importlib.util
import shutil
import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest
from docker_harness import ROOT, Image

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

BALANCER = "http://127.0.0.1:8080"
PROMETHEUS = "http://127.0.0.1:9090"
VICTIM = "sidetask-2"


def _load_local_compose() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "sidetask_local_compose", ROOT / "docker" / "local_compose.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _port_taken(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def _project_leftovers(docker: ModuleType, project: str) -> dict[str, list[str]]:
    label = f"label=com.docker.compose.project={project}"
    return {
        kind: docker.docker(*command, "--filter", label).split()
        for kind, command in {
            "containers": ("ps", "-a", "-q"),
            "networks": ("network", "ls", "-q"),
            "volumes": ("volume", "ls", "-q"),
        }.items()
    }


@pytest.fixture(scope="module")
def stack(docker_engine: ModuleType, cpu_image: Image) -> Iterator[dict[str, Any]]:
    if shutil.which("docker-compose") is None:
        pytest.skip("docker-compose not installed (Debian: apt-get install docker-compose)")
    local = _load_local_compose()
    ports = [8080, 9090, *local.replica_ports().values()]
    taken = [p for p in ports if _port_taken(p)]
    if taken:
        pytest.skip(f"loopback ports in use, compose.local.yaml needs them: {taken}")
    docker_engine.build_compose_images()
    env = {"GRAFANA_ADMIN_PASSWORD": "unused-grafana-does-not-start"}
    try:
        local.compose("up", "-d", "--no-build", timeout=400, env=env)
        ids = {
            name: local.compose("ps", "-q", name, env=env).strip() for name in local.replica_ports()
        }
        yield {"local": local, "env": env, "ids": ids, "docker": docker_engine}
    finally:
        local.compose("down", "-v", "--timeout", "45", timeout=300, env=env)


def _drive_load(seconds: float, kill_at: float, kill: Any) -> Counter[str]:
    """Four clients post /analyze through nginx for ``seconds``; ``kill()`` at ``kill_at``."""
    outcomes: Counter[str] = Counter()
    lock = threading.Lock()
    end = time.monotonic() + seconds
    body = {"texts": ["The service in Berlin was great."], "tasks": ["sentiment", "ner"]}

    def client() -> None:
        with httpx.Client(base_url=BALANCER, timeout=30) as http:
            while time.monotonic() < end:
                try:
                    outcome = str(http.post("/analyze", json=body).status_code)
                except httpx.HTTPError as error:
                    outcome = type(error).__name__
                with lock:
                    outcomes[outcome] += 1

    threads = [threading.Thread(target=client) for _ in range(4)]
    for thread in threads:
        thread.start()
    time.sleep(kill_at)
    kill()
    for thread in threads:
        thread.join(seconds + 60)
    return outcomes


def _up(query: str) -> dict[str, str]:
    answer = httpx.get(PROMETHEUS + "/api/v1/query", params={"query": query}, timeout=5)
    return {r["metric"]["instance"]: r["value"][1] for r in answer.json()["data"]["result"]}


def test_killing_a_replica_under_load_fails_no_request(stack: dict[str, Any]) -> None:
    docker, victim = stack["docker"], stack["ids"][VICTIM]
    # kept dead: compose's restart policy would bring it back before Prometheus looks
    docker.docker("update", "--restart=no", victim)
    outcomes = _drive_load(seconds=8.0, kill_at=2.0, kill=lambda: docker.docker("kill", victim))
    assert set(outcomes) == {"200"}, f"failed client requests: {outcomes}"
    assert outcomes["200"] >= 20, outcomes
    running = docker.docker("inspect", "-f", "{{.State.Running}}", victim).strip()
    assert running == "false"


def test_prometheus_shows_the_killed_replica_down_and_the_others_up(
    stack: dict[str, Any],
) -> None:
    ports = stack["local"].replica_ports()
    expected = {f"127.0.0.1:{port}": "0" if n == VICTIM else "1" for n, port in ports.items()}
    deadline = time.monotonic() + 60
    seen: dict[str, str] = {}
    while time.monotonic() < deadline:
        seen = _up('up{job="sidetask"}')
        if seen == expected:
            break
        time.sleep(0.5)
    assert seen == expected


def test_compose_down_leaves_nothing_running(stack: dict[str, Any]) -> None:
    local, docker = stack["local"], stack["docker"]
    local.compose("down", "-v", "--timeout", "45", timeout=300, env=stack["env"])
    assert _project_leftovers(docker, local.project_name()) == {
        "containers": [],
        "networks": [],
        "volumes": [],
    }
    for port in (8080, 9090, *local.replica_ports().values()):
        assert not _port_taken(port), f"port {port} still answers after down"


def test_local_configs_are_the_deploy_configs_re_addressed() -> None:
    """deploy/compose-local/ is rendered from deploy/nginx and deploy/prometheus; editing
    those without `docker/local_compose.py write-configs` fails here."""
    local = _load_local_compose()
    for path, text in local.rendered().items():
        assert Path(path).read_text() == text, f"{path} is stale: run write-configs"
