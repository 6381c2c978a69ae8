"""Server test fixtures: a tiny RoBERTa with two random heads, and apps running their lifespan.

(pytest runs in importlib mode, so this conftest does not shadow the root one.)"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from app_harness import engine_factory, running, save_tiny_heads
from fastapi import FastAPI

from models.backbone import Backbone
from server.app import create_app
from server.settings import Settings

__all__ = ["running", "settings_for", "shared_backbone_factory"]


@pytest.fixture(scope="session")
def heads_root(tiny_roberta: Backbone, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A heads folder with one sequence head (sentiment) and one token head (ner)."""
    return save_tiny_heads(tiny_roberta.info, tmp_path_factory.mktemp("heads"))


def settings_for(backbone_dir: Path, heads_dir: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "backbone": str(backbone_dir),
        "heads_dir": [heads_dir],
        **overrides,
    }
    return Settings(**values)


shared_backbone_factory = engine_factory


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
