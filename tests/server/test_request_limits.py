"""Per-request limits a client meets over HTTP: the token budget (413 before any model work)
and a hang-up that drops the rest of its work."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from app_harness import engine_factory

from engine.core import Engine, WindowItem
from models.backbone import Backbone
from server.app import create_app
from server.settings import Settings

DEADLINE = 30.0


def _metric(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_a_request_over_the_token_budget_is_413_and_never_runs(
    make_app: Any, client_for: Any
) -> None:
    async def go() -> None:
        app = make_app(max_request_tokens=100)
        async with client_for(app) as c:
            before = _metric((await c.get("/metrics")).text, "sidetask_batch_windows_count")
            r = await c.post("/analyze", json={"texts": ["word " * 30, "word " * 40]})
            assert r.status_code == 413, r.text
            error = r.json()["error"]
            assert error["code"] == "token_budget_exceeded"
            assert "budget is 100 tokens" in error["message"]
            assert "max_request_tokens" in error["message"]
            after = _metric((await c.get("/metrics")).text, "sidetask_batch_windows_count")
            assert after == before  # refused before any model work
            assert (await c.post("/analyze", json={"texts": ["word " * 10]})).status_code == 200

    asyncio.run(go())


class HeldSteps(Engine):
    """Every micro-batch waits for the test; the number of steps run is counted."""

    gate = threading.Semaphore(0)
    entered = threading.Semaphore(0)
    steps = 0

    def run_step(self, items: Sequence[WindowItem]) -> int:
        type(self).steps += 1
        self.entered.release()
        assert self.gate.acquire(timeout=DEADLINE)
        return super().run_step(items)


@contextlib.contextmanager
def _uvicorn(app: Any) -> Iterator[str]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_config=None, access_log=False))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(int(DEADLINE / 0.02)):
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(url + "/readyz").status_code == 200:
                    break
            time.sleep(0.02)
        yield url
    finally:
        server.should_exit = True
        thread.join(DEADLINE)
        sock.close()


def test_a_client_that_hangs_up_has_its_remaining_windows_dropped(
    tiny_roberta: Backbone, tiny_roberta_dir: Path, heads_root: Path
) -> None:
    settings = Settings(backbone=str(tiny_roberta_dir), heads_dir=[heads_root], max_batch_size=2)
    app = create_app(settings, engine_factory(tiny_roberta, HeldSteps))
    giant = " ".join(f"word{i}" for i in range(400))  # tens of 64-token windows
    body = json.dumps({"texts": [giant]}).encode()
    with _uvicorn(app) as url:
        port = int(url.rsplit(":", 1)[1])
        client = socket.create_connection(("127.0.0.1", port))
        client.sendall(
            b"POST /analyze HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            + f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        assert HeldSteps.entered.acquire(timeout=DEADLINE)  # its first step runs
        client.close()  # the client gives up
        metrics = ""
        for _ in range(int(DEADLINE / 0.02)):
            metrics = httpx.get(url + "/metrics").text
            if _metric(metrics, 'sidetask_cancelled_requests_total{reason="disconnect"}'):
                break
            time.sleep(0.02)
        assert _metric(metrics, 'sidetask_cancelled_requests_total{reason="disconnect"}') == 1
        assert _metric(metrics, "sidetask_dropped_windows_total") > 0
        HeldSteps.gate.release()  # the running step finishes; nothing of the giant follows
        steps_then = HeldSteps.steps
        HeldSteps.gate.release(5)
        r = httpx.post(url + "/analyze", json={"texts": ["after"]}, timeout=DEADLINE)
        assert r.status_code == 200
        assert HeldSteps.steps == steps_then + 1  # only "after" ran
        HeldSteps.gate.release(100)
