"""The deploy/ topology for real, on loopback: replicas behind nginx, watched by Prometheus.

One run of `deploy/local/up.py` (the documented command) with three `sidetask serve`
replicas of the tiny random RoBERTa: load goes through nginx, one replica is killed
mid-run, and then
- every valid request still succeeded (nginx retried the failed attempts elsewhere),
- Prometheus reports the killed replica down and the others up,
- every query of the Grafana dashboard returns data from that Prometheus.
Needs nginx and prometheus binaries (apt-get install nginx prometheus); skips without.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import random_head

from heads.io import save_head
from models.backbone import Backbone

ROOT = Path(__file__).resolve().parents[2]
UP = ROOT / "deploy" / "local" / "up.py"
DASHBOARD = ROOT / "deploy" / "grafana" / "dashboards" / "sidetask.json"
SBIN = "/usr/sbin:/usr/local/sbin:/sbin"
MISSING = [
    b for b in ("nginx", "prometheus") if not (shutil.which(b) or shutil.which(b, path=SBIN))
]
# Panels whose metric exists only on some deployments, each with the reason.
OPTIONAL_PANELS = {
    "GPU memory allocated": "sidetask_gpu_memory_allocated_bytes is exported only by "
    "replicas running on CUDA; these replicas run on CPU",
}
# What the dashboard's template variables and Grafana's interval stand for here.
SUBSTITUTIONS = {"$__rate_interval": "1m", "$instance": ".*"}

pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(180),
    pytest.mark.skipif(bool(MISSING), reason=f"not installed: {MISSING} (apt-get install)"),
]


@pytest.fixture(scope="module")
def topology(
    tiny_roberta: Backbone, tiny_roberta_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Any]]:
    work = tmp_path_factory.mktemp("topology")
    heads = work / "heads"
    info = tiny_roberta.info
    save_head(random_head(info, "sentiment", "sequence", k=8), heads / "sentiment")
    save_head(random_head(info, "ner", "token", k=8, seed=1), heads / "ner")
    state_file = work / "state.json"
    cmd = [sys.executable, str(UP), "--free-ports", "--replicas", "3"]
    cmd += ["--scrape-interval", "1s", "--startup-timeout", "90", "--drain-grace", "15"]
    cmd += ["--state-file", str(state_file), "--workdir", str(work / "run")]
    cmd += ["--", "--backbone", str(tiny_roberta_dir), "--heads-dir", str(heads)]
    cmd += ["--threads", "1", "--max-wait-ms", "2"]
    log = (work / "up.log").open("wb")
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
    try:
        deadline = time.monotonic() + 100
        while not state_file.exists():
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"topology did not start:\n{(work / 'up.log').read_text()}")
            time.sleep(0.25)
        yield json.loads(state_file.read_text())
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        log.close()


def _drive_load(
    base: str, seconds: float, kill_after: float, victim: int, sig: int = signal.SIGKILL
) -> Counter[str]:
    """4 clients POST /analyze through nginx; signal ``victim`` partway through."""
    outcomes: Counter[str] = Counter()
    lock = threading.Lock()
    stop_at = time.monotonic() + seconds
    bodies = [
        {"texts": ["Paris is lovely in spring."], "tasks": ["sentiment"]},
        {"texts": ["Ada Lovelace met Charles Babbage.", "Fine."], "tasks": ["ner"]},
        {"texts": ["One pass, many heads."]},
    ]

    def client(seed: int) -> None:
        with httpx.Client(base_url=base, timeout=30) as http:
            i = seed
            while time.monotonic() < stop_at:
                body = bodies[i % len(bodies)]
                i += 1
                try:
                    status = str(http.post("/analyze", json=body).status_code)
                except httpx.HTTPError as exc:
                    status = type(exc).__name__
                with lock:
                    outcomes[status] += 1

    threads = [threading.Thread(target=client, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    time.sleep(kill_after)
    os.kill(victim, sig)
    for t in threads:
        t.join()
    return outcomes


def _query(prometheus: str, expr: str) -> list[dict[str, Any]]:
    answer = httpx.get(f"{prometheus}/api/v1/query", params={"query": expr}, timeout=10).json()
    assert answer["status"] == "success", (expr, answer)
    return list(answer["data"]["result"])


def _dashboard_queries() -> list[tuple[str, str]]:
    """(panel title, expr) for every target of every panel, variables substituted."""
    dashboard = json.loads(DASHBOARD.read_text())
    queries = []
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            expr = target["expr"]
            for variable, value in SUBSTITUTIONS.items():
                expr = expr.replace(variable, value)
            assert "$" not in expr, f"unsubstituted variable in {panel['title']!r}: {expr}"
            queries.append((panel["title"], expr))
    return queries


def test_killing_a_replica_loses_no_request_and_prometheus_sees_it(
    topology: dict[str, Any],
) -> None:
    lb, prometheus = topology["balancer"], topology["prometheus"]
    victim, *survivors = topology["replicas"]

    # A few answers the dashboard's error panels must see (not retried: 4xx are final).
    with httpx.Client(base_url=lb, timeout=30) as http:
        assert http.post("/analyze", json={"texts": ["x"], "tasks": ["nope"]}).status_code == 422
        too_many = {"texts": ["x"] * 65, "tasks": ["sentiment"]}
        assert http.post("/analyze", json=too_many).status_code == 413

    outcomes = _drive_load(lb, seconds=6.0, kill_after=2.0, victim=victim["pid"])
    assert outcomes["200"] > 20, outcomes
    assert set(outcomes) == {"200"}, f"requests failed through the balancer: {outcomes}"

    # nginx really retried: some request went to the dead replica first, then elsewhere.
    log = [json.loads(line) for line in Path(topology["nginx_access_log"]).read_text().splitlines()]
    retried = [e for e in log if "," in e["upstream"] and e["request"].startswith("POST")]
    assert retried, "no request was retried on another replica"
    victim_addr = f"127.0.0.1:{victim['port']}"
    assert all(e["status"] == 200 for e in retried)
    assert any(e["upstream"].startswith(victim_addr) for e in retried)

    # Prometheus: the victim down, the others up (scrape interval 1 s).
    expected = {victim_addr: "0", **{f"127.0.0.1:{r['port']}": "1" for r in survivors}}
    deadline = time.monotonic() + 15
    while True:
        up = {
            r["metric"]["instance"]: r["value"][1] for r in _query(prometheus, 'up{job="sidetask"}')
        }
        if up == expected or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert up == expected

    # Every dashboard query answers with data from this Prometheus (which does not
    # answer with data for just anything).
    assert not _query(prometheus, 'sidetask_no_such_metric{job="sidetask"}')
    empty = []
    for title, expr in _dashboard_queries():
        if title in OPTIONAL_PANELS:
            continue
        if not _query(prometheus, expr):
            empty.append(f"{title}: {expr}")
    assert not empty, "dashboard queries without data:\n" + "\n".join(empty)

    # The instance variable's own query lists the replicas.
    values = httpx.get(
        f"{prometheus}/api/v1/label/instance/values",
        params={"match[]": 'up{job="sidetask"}'},
        timeout=10,
    ).json()["data"]
    assert set(values) == set(expected)


def test_a_replica_stopped_with_sigterm_drains_without_failing_requests(
    topology: dict[str, Any],
) -> None:
    """A rolling update's stop: the replica drains (503 to new work, nginx retries)."""
    _, leaving, staying = topology["replicas"]
    outcomes = _drive_load(
        topology["balancer"], seconds=4.0, kill_after=1.0, victim=leaving["pid"], sig=signal.SIGTERM
    )
    assert outcomes["200"] > 10, outcomes
    assert set(outcomes) == {"200"}, f"requests failed during the drain: {outcomes}"
    deadline = time.monotonic() + 20
    while _pid_alive(leaving["pid"]) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _pid_alive(leaving["pid"]), "the replica did not stop after draining"
    assert httpx.get(staying["url"] + "/readyz", timeout=5).status_code == 200


def _pid_alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie awaiting its parent's wait counts as stopped)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def test_optional_panels_exist_and_say_why() -> None:
    """The exemption list names real panels, each described as such in the dashboard."""
    panels = {p["title"]: p for p in json.loads(DASHBOARD.read_text())["panels"]}
    for title in OPTIONAL_PANELS:
        assert "GPU only" in panels[title]["description"]
        assert re.search(
            r"sidetask_gpu_memory_allocated_bytes", panels[title]["targets"][0]["expr"]
        )
