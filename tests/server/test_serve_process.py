"""The real `sidetask serve` (uvicorn, loopback): HTTP, SIGHUP reload, and SIGTERM drain
that answers every accepted request and exits 0; promtool on a scrape, in its own test so
that a missing promtool never skips the process test."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import random_head

from heads.io import save_head
from models.backbone import Backbone

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _command() -> list[str]:
    script = Path(sys.executable).with_name("sidetask")
    if script.is_file():
        return [str(script), "serve"]
    return [sys.executable, "-m", "cli.main", "serve"]


def _start(
    backbone: Path, heads: Path, port: int, log: Path, **env: str
) -> subprocess.Popen[bytes]:
    environ = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "SIDETASK_BACKBONE": str(backbone),
        "SIDETASK_HEADS_DIR": str(heads),
        "SIDETASK_THREADS": "1",
        "SIDETASK_LOG_JSON": "true",
        **env,
    }
    with log.open("wb") as out:
        return subprocess.Popen(
            [*_command(), "--port", str(port)], env=environ, stdout=out, stderr=subprocess.STDOUT
        )


def _wait_ready(base: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"server exited {proc.returncode}:\n{log.read_text()}")
        try:
            if httpx.get(base + "/readyz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"server not ready:\n{log.read_text()}")


PROMTOOL = shutil.which("promtool")


@pytest.mark.skipif(PROMTOOL is None, reason="promtool missing (apt-get install prometheus)")
def test_promtool_accepts_a_scrape(make_app: Any, client_for: Any) -> None:
    async def go() -> str:
        async with client_for(make_app()) as c:
            r = await c.post("/analyze", json={"texts": ["Anna in Paris"], "tasks": ["ner"]})
            assert r.status_code == 200
            return str((await c.get("/metrics")).text)

    scrape = asyncio.run(go())
    assert PROMTOOL is not None
    check = subprocess.run(
        [PROMTOOL, "check", "metrics"], input=scrape.encode(), capture_output=True
    )
    assert check.returncode == 0 and not check.stdout and not check.stderr, check


def test_serve_over_http_reload_and_drain(
    tiny_roberta: Backbone, tiny_roberta_dir: Path, heads_root: Path, tmp_path: Path
) -> None:
    heads = tmp_path / "heads"
    shutil.copytree(heads_root, heads)
    port, log = _free_port(), tmp_path / "server.log"
    base = f"http://127.0.0.1:{port}"
    proc = _start(tiny_roberta_dir, heads, port, log, SIDETASK_MAX_BATCH_SIZE="1")
    try:
        _wait_ready(base, proc, log)
        r = httpx.post(base + "/analyze", json={"texts": ["Anna in Paris"], "tasks": ["ner"]})
        assert r.status_code == 200 and "ner" in r.json()["results"][0]
        assert r.headers["x-request-id"]

        assert "sidetask_requests_total" in httpx.get(base + "/metrics").text

        save_head(random_head(tiny_roberta.info, "cola", seed=5), heads / "cola")
        proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 30
        while "cola" not in [h["name"] for h in httpx.get(base + "/tasks").json()["heads"]]:
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)

        text = " ".join(["Maria met Anna in the big city of Paris"] * 40)
        body = {"texts": [text, text], "tasks": ["ner", "sentiment", "cola"]}
        expected = httpx.post(base + "/analyze", json=body, timeout=60).json()["results"]
        with ThreadPoolExecutor(16) as pool:
            futures = [
                pool.submit(httpx.post, base + "/analyze", json=body, timeout=60) for _ in range(16)
            ]
            _wait_inflight(base, 16)  # every request is accepted before the signal
            proc.send_signal(signal.SIGTERM)
            probes = _probe_while_draining(base, proc)
            answers = [f.result() for f in futures]
        assert [a.status_code for a in answers] == [200] * 16
        for a in answers:
            assert [x["ner"] for x in a.json()["results"]] == [x["ner"] for x in expected]
        assert proc.wait(60) == 0, log.read_text()
        assert 503 in probes, probes
        lines = log.read_text().splitlines()
        assert any('"path": "/analyze"' in line and '"request_id"' in line for line in lines)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _wait_inflight(base: str, n: int) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        for line in httpx.get(base + "/metrics").text.splitlines():
            if line.startswith("sidetask_inflight_requests ") and float(line.split()[1]) > n:
                return  # n requests + this scrape
        time.sleep(0.01)
    raise AssertionError(f"fewer than {n} requests in flight")


def _probe_while_draining(base: str, proc: subprocess.Popen[bytes]) -> list[Any]:
    """Readiness and new work right after SIGTERM, until a 503 is seen or the process is
    gone (a deadline, not a fixed number of probes)."""
    seen: list[Any] = []
    deadline = time.monotonic() + 30
    while 503 not in seen and proc.poll() is None and time.monotonic() < deadline:
        try:
            seen.append(httpx.get(base + "/readyz", timeout=2).status_code)
            r = httpx.post(base + "/analyze", json={"texts": ["late"]}, timeout=5)
            seen.append(r.status_code)
        except httpx.TransportError as exc:
            seen.append(type(exc).__name__)
    return seen


def test_bad_head_refuses_to_start_with_a_clear_message(
    tiny_roberta_dir: Path, tmp_path: Path
) -> None:
    heads = tmp_path / "heads"
    (heads / "bad").mkdir(parents=True)
    (heads / "bad" / "manifest.json").write_text("{not json")
    port, log = _free_port(), tmp_path / "server.log"
    proc = _start(tiny_roberta_dir, heads, port, log)
    try:
        assert proc.wait(120) != 0
        assert "not valid JSON" in log.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
