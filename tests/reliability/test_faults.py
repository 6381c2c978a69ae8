"""Faults a user must survive: out-of-memory inside a batch, broken heads at start-up,
SIGTERM while the model is still loading, and clients that time out under a slow model."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import shutil
import signal
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import torch
from app_harness import assert_same_answers
from conftest import random_head
from fastapi import FastAPI

from benchmarks.live_server import ServerProcess
from engine.core import Engine
from heads.io import save_head
from heads.manifest import WEIGHTS_FILE
from models.backbone import Backbone

Running = Callable[[FastAPI], contextlib.AbstractAsyncContextManager[httpx.AsyncClient]]
GATED = [sys.executable, str(Path(__file__).with_name("gated_serve.py"))]


@pytest.mark.parametrize("error", [torch.OutOfMemoryError, MemoryError])
def test_out_of_memory_in_a_batch_splits_it_and_fails_only_the_culprit(
    app_with: Callable[..., FastAPI],
    running: Running,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    error: type[BaseException],
) -> None:
    sizes: list[tuple[int, bool]] = []  # (requests in the call, poison among them)
    holding, held = threading.Event(), threading.Event()

    class Poisoned(Engine):
        def run_step(self, items: Any) -> Any:
            if any(it.state.text == HOLD for it in items):
                holding.set()
                held.wait(60)  # the worker waits here until every body below is queued
                return super().run_step(items)
            poisoned = any("Poison" in it.state.text for it in items)
            sizes.append((len({id(it.prepared) for it in items}), poisoned))
            if poisoned:
                raise error("injected: out of memory")
            return super().run_step(items)

    freed: list[int] = []
    observed: list[tuple[int, bool]] = []
    bodies = [{"texts": [f"Anna met Maria in Paris {i}"]} for i in range(7)]
    # as long as the others: the scheduler batches windows of similar lengths together
    bodies.insert(5, {"texts": ["Anna met Maria in Poison 5"]})

    async def go() -> None:
        app = app_with(Poisoned, kernel="torch")
        async with running(app) as c:
            alone = [(await c.post("/analyze", json=b)).json() for b in bodies]
            monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
            monkeypatch.setattr(torch.cuda, "empty_cache", lambda: freed.append(1))
            sizes.clear()
            # Hold the worker, queue all eight, then let it go: they are one batch by
            # construction, not because they happened to arrive within a wait window.
            hold = asyncio.ensure_future(c.post("/analyze", json={"texts": [HOLD]}))
            await _until(holding.is_set, "the worker never took the holding request")
            sent = [asyncio.ensure_future(c.post("/analyze", json=b)) for b in bodies]
            batcher = app.state.sidetask.batcher
            await _until(lambda: batcher.depth == len(bodies), "the requests never queued")
            held.set()
            rs = await asyncio.gather(*sent)
            assert (await hold).status_code == 200
            monkeypatch.undo()
            observed.extend(sizes)
            for i, (r, expected) in enumerate(zip(rs, alone, strict=True)):
                if i == 5:
                    assert r.status_code == 500
                    err = r.json()["error"]
                    assert err["code"] == "internal_error" and len(err["error_id"]) == 12
                    failed_id = err["error_id"]
                else:
                    assert r.status_code == 200, r.text
                    assert_same_answers(r.json()["results"], expected["results"])
            assert (await c.get("/readyz")).status_code == 200
            assert (await c.post("/analyze", json=bodies[0])).status_code == 200
            assert any(failed_id in rec.getMessage() for rec in caplog.records)

    asyncio.run(go())
    poisoned = [n for n, bad in observed if bad]
    assert poisoned[0] == len(bodies), observed  # the whole batch ran together first
    for bigger, smaller in itertools.pairwise(poisoned):
        assert smaller == (bigger + 1) // 2 or smaller == bigger // 2  # halves, retried
    assert poisoned[-1] == 1  # the culprit alone, then given up
    assert sum(n for n, bad in observed if not bad) == len(bodies) - 1  # others ran once
    if error is torch.OutOfMemoryError:
        assert len(freed) == len(poisoned)  # accelerator cache released before each retry
    else:
        assert freed == []


HOLD = "Hold the worker here"


async def _until(condition: Callable[[], bool], failure: str, seconds: float = 30) -> None:
    """Poll ``condition`` under a deadline (never a fixed sleep before an assert)."""
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, failure
        await asyncio.sleep(0.005)


def test_bad_heads_are_skipped_when_configured_and_reported(
    serve: Callable[..., ServerProcess],
    tiny_heads: Path,
    tiny_roberta: Backbone,
    tmp_path: Path,
) -> None:
    heads = tmp_path / "heads"
    shutil.copytree(tiny_heads, heads)
    save_head(random_head(tiny_roberta.info, "corrupt"), heads / "corrupt")
    (heads / "corrupt" / WEIGHTS_FILE).write_bytes(b"\x00not safetensors" * 8)
    (heads / "junk").mkdir()
    (heads / "junk" / "manifest.json").write_text('{"name": "../../etc/passwd"}')

    server = serve(heads, skip_bad_heads="true", log_level="info")
    server.wait_ready()
    tasks = httpx.get(server.base + "/tasks").json()
    assert [h["name"] for h in tasks["heads"]] == ["ner", "sentiment"]
    failed = {Path(f["folder"]).name: f["error"] for f in tasks["failures"]}
    assert set(failed) == {"corrupt", "junk"}
    assert "corrupt safetensors" in failed["corrupt"]
    assert "invalid manifest" in failed["junk"]
    r = httpx.post(server.base + "/analyze", json={"texts": ["Anna lives in Paris"]})
    assert r.status_code == 200 and set(r.json()["results"][0]) == {"ner", "sentiment"}
    assert server.stop() == 0
    log = server.log_text()
    assert "skipping head" in log and "corrupt" in log and "junk" in log


def test_sigterm_while_the_model_loads_exits_at_once_and_cleanly(
    serve: Callable[..., ServerProcess], tiny_heads: Path, tmp_path: Path
) -> None:
    gate = tmp_path / "gate"
    server = serve(tiny_heads, command=GATED, test_gate=str(gate), log_level="info")
    deadline = time.monotonic() + 120
    while not gate.with_suffix(".loading").exists():
        assert server.proc is not None and server.proc.poll() is None, server.log_text()
        assert time.monotonic() < deadline, server.log_text()
        time.sleep(0.05)
    while True:  # the loader runs; wait for the socket
        with contextlib.suppress(httpx.TransportError):
            if httpx.get(server.base + "/healthz", timeout=1).status_code == 200:
                break
        assert time.monotonic() < deadline, server.log_text()
        time.sleep(0.05)
    assert httpx.get(server.base + "/readyz").json()["error"]["code"] == "not_ready"
    r = httpx.post(server.base + "/analyze", json={"texts": ["too early"]})
    assert r.status_code == 503 and r.json()["error"]["message"] == "model is loading"

    assert server.proc is not None
    server.proc.send_signal(signal.SIGTERM)
    # The gate never opens, so the load never finishes: exiting at all proves the process
    # did not wait for it (wait raises TimeoutExpired if it does).
    code = server.proc.wait(30)
    assert code == 0, server.log_text()
    assert not gate.exists() and "Traceback" not in server.log_text()


def test_timed_out_clients_leave_no_orphaned_work(
    app_with: Callable[..., FastAPI], running: Running
) -> None:
    """Clients get their 504 at the deadline even while the worker is stuck, and the work
    they leave behind never runs. The worker is held by an event until every client has its
    answer, so no answer can come from work finishing in time, however slow the machine."""
    calls: list[int] = []
    held = threading.Event()

    class Slow(Engine):
        def run_step(self, items: Any) -> Any:
            calls.append(len(items))
            held.wait(60)
            return super().run_step(items)

    async def go() -> None:
        app = app_with(Slow, request_timeout_s=0.5, max_batch_size=1)
        async with running(app) as c:
            calls.clear()
            try:
                rs = await asyncio.wait_for(
                    asyncio.gather(
                        *(c.post("/analyze", json={"texts": [f"text {i}"]}) for i in range(40))
                    ),
                    timeout=30,
                )
            finally:
                held.set()
            assert [r.status_code for r in rs] == [504] * 40
            assert all(r.json()["error"]["code"] == "timeout" for r in rs)
            assert len(calls) <= 1  # at most the one batch the worker had started
            started = len(calls)
            deadline = time.monotonic() + 30
            while "sidetask_queue_depth 0.0" not in (await c.get("/metrics")).text.splitlines():
                assert time.monotonic() < deadline, "the timed-out requests stayed queued"
                await asyncio.sleep(0.02)
            # The worker is free again; if any abandoned request were still waiting, it
            # would run before (or with) this one.
            assert (await c.post("/analyze", json={"texts": ["after"]})).status_code == 200
            assert len(calls) == started + 1

    asyncio.run(go())
