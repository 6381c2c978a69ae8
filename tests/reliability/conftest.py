"""Reliability fixtures: random heads for the tiny RoBERTa, real server processes, in-process
apps with an injectable engine. (importlib mode: this conftest shadows no other.)"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import torch
from conftest import random_head
from fastapi import FastAPI

from benchmarks.live_server import ServerProcess, server_env
from heads.io import save_head
from models.backbone import Backbone
from server.app import create_app
from server.engine import Engine
from server.loading import engine_config, load_heads
from server.settings import Settings

NER_LABELS = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]
EngineClass = type[Engine]


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread() -> Iterator[None]:
    """Tiny models on a shared 2-core box run far faster without intra-op threads."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def tiny_heads(tiny_roberta: Backbone, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A heads folder for the tiny RoBERTa: sentiment (sequence) and ner (token)."""
    root = tmp_path_factory.mktemp("reliability-heads")
    info = tiny_roberta.info
    save_head(random_head(info, "sentiment", "sequence", k=16, seed=1), root / "sentiment")
    save_head(random_head(info, "ner", "token", k=16, labels=NER_LABELS, seed=2), root / "ner")
    return root


@pytest.fixture
def serve(tiny_roberta_dir: Path, tmp_path: Path) -> Iterator[Callable[..., ServerProcess]]:
    """``serve(heads_dir, **settings)`` starts a real `sidetask serve`; stopped at teardown."""
    started: list[ServerProcess] = []

    def start(heads: Path, command: list[str] | None = None, **settings: Any) -> ServerProcess:
        env = server_env(str(tiny_roberta_dir), heads, 1, settings)
        log = tmp_path / f"server-{len(started)}.log"
        proc = ServerProcess(env, log, command=command).start()
        started.append(proc)
        return proc

    yield start
    for proc in started:
        if proc.proc is not None and proc.proc.poll() is None:
            proc.proc.kill()
            proc.proc.wait()


@pytest.fixture
def app_with(
    tiny_roberta: Backbone, tiny_roberta_dir: Path, tiny_heads: Path
) -> Callable[..., FastAPI]:
    """``app_with(EngineSubclass, **settings)``: an app whose engine is that class."""

    def make(engine_cls: EngineClass = Engine, **overrides: Any) -> FastAPI:
        values: dict[str, Any] = {
            "backbone": str(tiny_roberta_dir),
            "heads_dir": [tiny_heads],
            "max_wait_ms": 2.0,
            **overrides,
        }

        def factory(settings: Settings) -> Engine:
            heads = load_heads(settings, tiny_roberta)
            return engine_cls(tiny_roberta, heads, engine_config(settings))

        return create_app(Settings(**values), factory)

    return make


@contextlib.asynccontextmanager
async def _running(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """Run the app's lifespan, wait until ready, hand out an in-process client."""
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    client = httpx.AsyncClient(transport=transport, base_url="http://test")
    async with app.router.lifespan_context(app), client:
        for _ in range(500):
            if (await client.get("/readyz")).status_code == 200:
                break
            await asyncio.sleep(0.01)
        else:
            raise AssertionError((await client.get("/readyz")).json())
        yield client


@pytest.fixture
def running() -> Callable[[FastAPI], contextlib.AbstractAsyncContextManager[httpx.AsyncClient]]:
    """``async with running(app) as client``: lifespan started, model ready."""
    return _running
