"""Helpers shared by the server and reliability tests: running apps in-process, tiny heads."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import random_head
from fastapi import FastAPI

from engine.core import Engine, EngineConfig
from engine.loading import load_heads
from heads.io import save_head
from models.backbone import Backbone, BackboneInfo
from server.settings import Settings

NER_LABELS = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]


def save_tiny_heads(info: BackboneInfo, root: Path) -> Path:
    """One sequence head (sentiment) and one token head (ner) with random weights."""
    save_head(random_head(info, "sentiment", "sequence", k=16, seed=1), root / "sentiment")
    save_head(random_head(info, "ner", "token", k=16, labels=NER_LABELS, seed=2), root / "ner")
    return root


def engine_factory(
    backbone: Backbone, engine_cls: type[Engine] = Engine
) -> Callable[[Settings], Engine]:
    """Build engines around an already loaded backbone (loading once per session is enough)."""

    def factory(settings: Settings) -> Engine:
        return engine_cls(
            backbone, load_heads(settings, backbone), EngineConfig.from_settings(settings)
        )

    return factory


@contextlib.asynccontextmanager
async def running(app: FastAPI, wait_ready: bool = True) -> AsyncIterator[httpx.AsyncClient]:
    """Run the app's lifespan and hand out an in-process client (after /readyz is 200)."""
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


def assert_same_answers(a: Any, b: Any) -> None:
    """Labels, spans and texts equal; floats equal up to batch padding noise (1e-4)."""
    if dataclasses.is_dataclass(a):  # an answer record: same type, fields compared alike
        assert type(b) is type(a)
        for f in dataclasses.fields(a):
            assert_same_answers(getattr(a, f.name), getattr(b, f.name))
    elif isinstance(a, dict):
        assert isinstance(b, dict) and a.keys() == b.keys()
        for key in a:
            assert_same_answers(a[key], b[key])
    elif isinstance(a, list):
        assert isinstance(b, list) and len(a) == len(b)
        for x, y in zip(a, b, strict=True):
            assert_same_answers(x, y)
    elif isinstance(a, float):
        assert a == pytest.approx(b, abs=1e-4)
    else:
        assert a == b
