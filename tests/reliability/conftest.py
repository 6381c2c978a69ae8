"""Reliability fixtures: random heads for the tiny RoBERTa, real server processes, in-process
apps with an injectable engine. (importlib mode: this conftest shadows no other.)"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from app_harness import engine_factory, save_tiny_heads
from app_harness import running as running_app
from fastapi import FastAPI

from benchmarks.live_server import ServerProcess, server_env
from engine.core import Engine
from models.backbone import Backbone
from server.app import create_app
from server.settings import Settings

EngineClass = type[Engine]


@pytest.fixture(scope="session")
def tiny_heads(tiny_roberta: Backbone, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A heads folder for the tiny RoBERTa: sentiment (sequence) and ner (token)."""
    return save_tiny_heads(tiny_roberta.info, tmp_path_factory.mktemp("reliability-heads"))


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
            **overrides,
        }

        return create_app(Settings(**values), engine_factory(tiny_roberta, engine_cls))

    return make


@pytest.fixture
def running() -> Callable[[FastAPI], contextlib.AbstractAsyncContextManager[httpx.AsyncClient]]:
    """``async with running(app) as client``: lifespan started, model ready."""
    return running_app
