"""The CPU image for real: built from this tree (docker/local_build.py, as `make image`),
run the way Kubernetes and compose run it (read-only root, /tmp a tmpfs), it answers
/analyze as the host's own server does, runs as a non-root user, and `docker stop` drains
an in-flight request and exits 0 within the drain timeout.

Containers use the host network on a free loopback port (this machine's dockerd has no NAT
bridge). The image size and the time to ready go to benchmarks/results/docker_cpu.json.
Skips with the reason when no Docker engine can start.
"""

from __future__ import annotations

import json
import os
import platform
import re
import subprocess
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest
from docker_harness import ROOT, Image, wait_ready
from serve_harness import free_port, serving

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

RESULTS = ROOT / "benchmarks" / "results" / "docker_cpu.json"
DRAIN_TIMEOUT_S = 20
OURS = {"SIDETASK_HOST", "SIDETASK_PORT", "SIDETASK_THREADS", "SIDETASK_DRAIN_TIMEOUT_S"}
TEXTS = [
    "I loved this film, the acting was wonderful.",
    "The plot was dull and the ending made no sense at all.",
    "Angela Merkel met Emmanuel Macron in Paris on Tuesday.",
    "Him would have went to the the store.",
]


@pytest.fixture(scope="module")
def container(docker_engine: ModuleType, cpu_image: Image) -> Iterator[dict[str, Any]]:
    """The image started as compose and Kubernetes start it; its URL and time to ready."""
    port = free_port()
    # the settings this test process gives the host's server (tests/conftest.py pins dtypes)
    same_settings = [
        f"--env={k}" for k in sorted(os.environ) if k.startswith("SIDETASK_") and k not in OURS
    ]
    started = time.monotonic()
    cid = docker_engine.docker(
        "run", "-d", "--read-only", "--tmpfs", "/tmp", "--network", "host",
        "--security-opt", "no-new-privileges:true", "--cap-drop", "ALL",
        "-e", "SIDETASK_HOST=127.0.0.1", "-e", f"SIDETASK_PORT={port}",
        "-e", "SIDETASK_THREADS=1", "-e", f"SIDETASK_DRAIN_TIMEOUT_S={DRAIN_TIMEOUT_S}",
        *same_settings, cpu_image.tag,
    ).strip()  # fmt: skip
    try:
        base = f"http://127.0.0.1:{port}"
        ready_s = wait_ready(base + "/readyz", cid, docker_engine, deadline_s=120)
        yield {"id": cid, "url": base, "ready_s": ready_s, "started": started}
    finally:
        docker_engine.docker("rm", "-f", "-v", cid, check=False)


def test_image_answers_like_the_hosts_server(
    container: dict[str, Any], tmp_path: Path, cpu_image: Image
) -> None:
    """One text per request: a batch's composition depends on arrival timing and moves
    scores in the fourth digit, a single text's answer does not."""
    bodies = [{"texts": [text]} for text in TEXTS]
    in_image = [_analyze(container["url"], body) for body in bodies]
    with serving(tmp_path / "host.log") as host:
        on_host = [_analyze(host, body) for body in bodies]
    assert {a["backbone"] for a in in_image + on_host} == {"sentence-transformers/all-MiniLM-L6-v2"}
    assert in_image[2]["results"][0]["ner"], "the NER head found no entity: a broken image"
    assert _rounded(in_image) == _rounded(on_host)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(
        json.dumps(
            {
                "image": cpu_image.tag,
                "image_size_bytes": cpu_image.size_bytes,
                "image_size_gb": round(cpu_image.size_bytes / 1e9, 2),
                "build_s_this_run": round(cpu_image.build_s, 1),
                "time_to_ready_s": round(container["ready_s"], 2),
                "run": "docker run --read-only --tmpfs /tmp --network host, SIDETASK_THREADS=1",
                "machine": f"{platform.machine()}, {os.cpu_count()} cores",
                "measured": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                "command": "pytest tests/deploy/test_docker_run.py",
            },
            indent=2,
        )
        + "\n"
    )


def _analyze(base: str, body: dict[str, Any]) -> dict[str, Any]:
    response = httpx.post(base + "/analyze", json=body, timeout=60)
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


def _rounded(value: Any) -> Any:
    if isinstance(value, float):
        return round(value, 6)
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_rounded(v) for v in value]
    return value


def test_runs_as_non_root_on_a_read_only_root(
    container: dict[str, Any], docker_engine: ModuleType
) -> None:
    uid = docker_engine.docker("exec", container["id"], "id", "-u").strip()
    assert uid == "10001"
    # the server process itself (PID 1), not only a new exec
    status = docker_engine.docker("exec", container["id"], "cat", "/proc/1/status")
    assert re.search(r"^Uid:\s+10001\s", status, re.M), status
    with pytest.raises(subprocess.CalledProcessError) as wrote:
        docker_engine.docker("exec", container["id"], "touch", "/home/sidetask/x")
    assert "Read-only file system" in wrote.value.stderr


def test_docker_stop_drains_in_flight_work_and_exits_0(
    container: dict[str, Any], docker_engine: ModuleType
) -> None:
    """Runs last in this module: it stops the container."""
    # a few seconds of work on one thread: in flight at SIGTERM, done well within the drain
    long_texts = {"texts": [" ".join(TEXTS * 12)] * 12, "tasks": ["ner", "sentiment"]}
    answer: dict[str, Any] = {}

    def send() -> None:
        try:
            answer["status"] = httpx.post(
                container["url"] + "/analyze", json=long_texts, timeout=120
            ).status_code
        except httpx.HTTPError as error:  # a dropped request is what this test catches
            answer["error"] = repr(error)

    client = threading.Thread(target=send)
    client.start()
    in_flight = False
    deadline = time.monotonic() + 30
    while not in_flight and time.monotonic() < deadline and "status" not in answer:
        metrics = httpx.get(container["url"] + "/metrics", timeout=5).text
        found = re.search(r"^sidetask_inflight_requests (\S+)$", metrics, re.M)
        in_flight = bool(found and float(found[1]) >= 2)  # this scrape and the long request
        time.sleep(0.05)
    assert in_flight, f"the long request was never seen in flight: {answer}"
    start = time.monotonic()
    docker_engine.docker("stop", "-t", str(DRAIN_TIMEOUT_S + 10), container["id"], timeout=90)
    stopped_s = time.monotonic() - start
    client.join(60)
    assert answer == {"status": 200}, answer
    exit_code = docker_engine.docker("inspect", "-f", "{{.State.ExitCode}}", container["id"])
    assert exit_code.strip() == "0", docker_engine.docker("logs", container["id"], check=False)
    assert stopped_s < DRAIN_TIMEOUT_S, stopped_s
