"""Under concurrency the batcher merges requests yet answers each exactly as if alone;
overload is refused fast with 429; hot reload and batch faults lose no other request."""

from __future__ import annotations

import asyncio
import random
import shutil
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from app_harness import assert_same_answers
from conftest import random_head

from engine.core import Engine, EngineConfig
from engine.loading import load_heads
from models.backbone import Backbone, BackboneInfo
from server.settings import Settings

TASK_SETS: list[list[str] | None] = [
    ["sentiment"],
    ["ner"],
    ["embedding"],
    ["sentiment", "ner"],
    ["ner", "embedding", "sentiment"],
    None,
]
WORDS = [
    "Anna",
    "Paris",
    "bank",
    "river",
    "loved",
    "hated",
    "the",
    "a",
    "of",
    "Berlin",
    "Maria",
    "quickly",
    "東京",
    "emoji",
    "🙂",
]


def _requests(n: int, seed: int = 0) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        texts = [
            " ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 40)))
            for _ in range(rng.randint(1, 3))
        ]
        body: dict[str, Any] = {"texts": texts}
        tasks = TASK_SETS[i % len(TASK_SETS)]
        if tasks is not None:
            body["tasks"] = tasks
        out.append(body)
    return out


def _histogram_count(metrics: str, name: str, le: str) -> float:
    for line in metrics.splitlines():
        if line.startswith(f'{name}_bucket{{le="{le}"}}'):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name} bucket {le} missing")


def test_64_concurrent_clients_get_the_sequential_answers(make_app: Any, client_for: Any) -> None:
    bodies = _requests(64)

    async def go() -> None:
        async with client_for(make_app(max_wait_ms=20)) as c:
            sequential = []
            for body in bodies:
                r = await c.post("/analyze", json=body)
                assert r.status_code == 200, r.text
                sequential.append(r.json()["results"])
            rs = await asyncio.gather(*(c.post("/analyze", json=b) for b in bodies))
            for r, expected in zip(rs, sequential, strict=True):
                assert r.status_code == 200, r.text
                assert_same_answers(r.json()["results"], expected)
            metrics = (await c.get("/metrics")).text
            total = _histogram_count(metrics, "sidetask_batch_size", "+Inf")
            singles = _histogram_count(metrics, "sidetask_batch_size", "1.0")
            assert total - singles >= 1, "no batch held more than one request"
            assert total < 128  # fewer batches than requests

    asyncio.run(go())


def test_tiny_queue_under_burst_gives_429_and_answers_the_rest(
    make_app: Any, client_for: Any
) -> None:
    bodies = _requests(40, seed=1)

    async def go() -> None:
        async with client_for(make_app(queue_size=2, max_batch_size=2)) as c:
            expected = [(await c.post("/analyze", json=b)).json()["results"] for b in bodies]
            rs = await asyncio.gather(*(c.post("/analyze", json=b) for b in bodies))
            codes = [r.status_code for r in rs]
            assert set(codes) <= {200, 429} and 429 in codes and 200 in codes
            for r, exp in zip(rs, expected, strict=True):
                if r.status_code == 429:
                    assert int(r.headers["retry-after"]) >= 1
                    assert r.json()["error"]["code"] == "overloaded"
                else:
                    assert_same_answers(r.json()["results"], exp)
            metrics = (await c.get("/metrics")).text
            assert 'sidetask_rejected_requests_total{reason="overloaded"}' in metrics
            assert (await c.post("/analyze", json=bodies[0])).status_code == 200

    asyncio.run(go())


def test_hot_reload_under_load_adds_a_task_and_fails_no_request(
    make_app: Any, client_for: Any, heads_root: Path, tiny_roberta: Backbone, tmp_path: Path
) -> None:
    root = tmp_path / "heads"
    shutil.copytree(heads_root, root)
    bodies = _requests(48, seed=2)

    async def go() -> None:
        async with client_for(make_app(heads_dir=root)) as c:
            r = await c.post("/analyze", json={"texts": ["x"], "tasks": ["cola"]})
            assert r.status_code == 422
            head = random_head(tiny_roberta.info, "cola", labels=["unacceptable", "acceptable"])
            from heads.io import save_head

            save_head(head, root / "cola")
            load = asyncio.gather(*(c.post("/analyze", json=b) for b in bodies))
            reload = c.post("/admin/reload")
            rs, rr = await asyncio.gather(load, reload)
            assert rr.status_code == 200 and rr.json()["added"] == ["cola"]
            assert all(r.status_code == 200 for r in rs), [
                r.text for r in rs if r.status_code != 200
            ]
            r = await c.post("/analyze", json={"texts": ["x"], "tasks": ["cola"]})
            assert r.json()["results"][0]["cola"]["label"] in ("unacceptable", "acceptable")
            names = [h["name"] for h in (await c.get("/tasks")).json()["heads"]]
            assert names == ["cola", "ner", "sentiment"]
            assert 'heads="cola,ner,sentiment"' in (await c.get("/metrics")).text

    asyncio.run(go())


def _broken_head(kind: str, info: BackboneInfo, folder: Path) -> None:
    """A head folder that must not load: a junk manifest, or one the schema accepts but
    the head cannot use (attention heads not dividing k; positions shorter than windows)."""
    if kind == "junk":
        folder.mkdir()
        (folder / "manifest.json").write_text('{"name": "../etc", "kind": "sequence"}')
        return
    from heads.io import save_head
    from heads.task_head import TaskHead

    head = random_head(info, "broken", k=16)
    if kind == "attention":
        save_head(head, folder)
        path = folder / "manifest.json"
        path.write_text(
            path.read_text().replace('"num_attention_heads": 2', '"num_attention_heads": 3')
        )
        return
    short = head.manifest.model_copy(update={"positions": True, "max_positions": 4})
    save_head(TaskHead(short), folder)


@pytest.mark.parametrize("kind", ["junk", "attention", "short_positions"])
def test_reload_with_a_broken_head_keeps_the_old_set(
    make_app: Any,
    client_for: Any,
    heads_root: Path,
    tiny_roberta: Backbone,
    tmp_path: Path,
    kind: str,
) -> None:
    root = tmp_path / "heads"
    shutil.copytree(heads_root, root)

    async def go() -> None:
        async with client_for(make_app(heads_dir=root)) as c:
            _broken_head(kind, tiny_roberta.info, root / "broken")
            r = await c.post("/admin/reload")
            assert r.status_code == 422 and r.json()["error"]["code"] == "head_invalid"
            assert [h["name"] for h in (await c.get("/tasks")).json()["heads"]] == [
                "ner",
                "sentiment",
            ]
            ok = await c.post("/analyze", json={"texts": ["x"], "tasks": ["ner"]})
            assert ok.status_code == 200

    asyncio.run(go())


def test_a_failing_request_fails_alone_with_500_and_error_id(
    make_app: Any, client_for: Any, tiny_roberta: Backbone, caplog: pytest.LogCaptureFixture
) -> None:
    class Poisoned(Engine):
        def run_step(self, items: Any) -> Any:
            if any("POISON" in it.state.text for it in items):
                raise RuntimeError("CUDA out of memory (injected)")
            return super().run_step(items)

    def factory(settings: Settings) -> Engine:
        return Poisoned(
            tiny_roberta, load_heads(settings, tiny_roberta), EngineConfig.from_settings(settings)
        )

    bodies = [{"texts": [f"text {i}"]} for i in range(11)] + [{"texts": ["x POISON"]}]

    async def go() -> None:
        async with client_for(make_app(factory=factory, max_wait_ms=30)) as c:
            rs = await asyncio.gather(*(c.post("/analyze", json=b) for b in bodies))
            assert [r.status_code for r in rs] == [200] * 11 + [500]
            err = rs[-1].json()["error"]
            assert err["code"] == "internal_error" and len(err["error_id"]) == 12
            assert (await c.get("/readyz")).status_code == 200

    asyncio.run(go())
    assert any(err_id_in(rec.getMessage()) for rec in caplog.records)


def err_id_in(message: str) -> bool:
    return "error id" in message


def test_dead_worker_turns_readyz_503_and_asks_to_exit(
    make_app: Any, client_for: Any, tiny_roberta: Backbone
) -> None:
    class Fatal(BaseException):
        pass

    died = threading.Event()

    class Broken(Engine):
        def run_step(self, items: Any) -> Any:
            died.set()
            raise Fatal("worker bug")

    def factory(settings: Settings) -> Engine:
        return Broken(
            tiny_roberta, load_heads(settings, tiny_roberta), EngineConfig.from_settings(settings)
        )

    async def go() -> None:
        app = make_app(factory=factory)
        async with client_for(app) as c:
            r = await c.post("/analyze", json={"texts": ["x"]})
            assert r.status_code == 503
            deadline = time.monotonic() + 30  # the answer may come before the thread ends
            while (await c.get("/readyz")).json().get("error", {}).get("message") != (
                "worker thread died"
            ):
                assert time.monotonic() < deadline, "readyz never reported the dead worker"
                await asyncio.sleep(0.01)
            # readiness flips in the worker thread; the exit request reaches the loop after it
            while app.state.sidetask.exit_code == 0:
                assert time.monotonic() < deadline, "the server never asked to exit"
                await asyncio.sleep(0.01)

    asyncio.run(go())
