"""Server test fixtures: a tiny RoBERTa with two random heads, and apps running their lifespan.

(pytest runs in importlib mode, so this conftest does not shadow the root one.)"""

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

from heads.io import save_head
from models.backbone import Backbone
from server.app import create_app
from server.engine import Engine
from server.loading import engine_config, load_heads
from server.settings import Settings

NER_LABELS = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread() -> Iterator[None]:
    """Tiny models on a shared 2-core box run ~100x faster without intra-op threads."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def heads_root(tiny_roberta: Backbone, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A heads folder with one sequence head (sentiment) and one token head (ner)."""
    root = tmp_path_factory.mktemp("heads")
    info = tiny_roberta.info
    save_head(random_head(info, "sentiment", "sequence", k=16, seed=1), root / "sentiment")
    save_head(random_head(info, "ner", "token", k=16, labels=NER_LABELS, seed=2), root / "ner")
    return root


def settings_for(backbone_dir: Path, heads_dir: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "backbone": str(backbone_dir),
        "heads_dir": [heads_dir],
        "max_wait_ms": 2.0,
        **overrides,
    }
    return Settings(**values)


def shared_backbone_factory(backbone: Backbone) -> Callable[[Settings], Engine]:
    """Build engines around an already loaded backbone (loading once per session is enough)."""

    def factory(settings: Settings) -> Engine:
        return Engine(backbone, load_heads(settings, backbone), engine_config(settings))

    return factory


@contextlib.asynccontextmanager
async def running(app: FastAPI, wait_ready: bool = True) -> AsyncIterator[httpx.AsyncClient]:
    """Run the app's lifespan and hand out an in-process client."""
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    client = httpx.AsyncClient(transport=transport, base_url="http://test")
    async with app.router.lifespan_context(app), client:
        if wait_ready:
            for _ in range(500):
                if (await client.get("/readyz")).status_code == 200:
                    break
                await asyncio.sleep(0.01)
            else:
                raise AssertionError((await client.get("/readyz")).json())
        yield client


@pytest.fixture
def client_for() -> Callable[..., contextlib.AbstractAsyncContextManager[httpx.AsyncClient]]:
    """``async with client_for(app) as client``: lifespan started, model ready."""
    return running


@pytest.fixture
def make_app(
    tiny_roberta: Backbone, tiny_roberta_dir: Path, heads_root: Path
) -> Callable[..., FastAPI]:
    def make(heads_dir: Path | None = None, factory: Any = None, **overrides: Any) -> FastAPI:
        settings = settings_for(tiny_roberta_dir, heads_dir or heads_root, **overrides)
        return create_app(settings, factory or shared_backbone_factory(tiny_roberta))

    return make
