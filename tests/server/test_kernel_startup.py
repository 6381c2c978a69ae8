"""Start-up picks the accumulator path through Settings, proves it, and tells clients and
Prometheus which one serves; a failed forced check keeps the replica out of rotation."""

from __future__ import annotations

import asyncio
import functools
import time
from pathlib import Path
from typing import Any

import pytest
from app_harness import running

from cli.main import build_parser, settings_from_args
from engine import loading
from engine.core import EngineConfig
from models import kernel_check
from models.kernels.accumulate import Segment, accumulate_triton, interpreting
from server.app import create_app
from server.settings import Settings

needs_interpreter = pytest.mark.skipif(
    not interpreting(), reason="needs TRITON_INTERPRET=1 (set by tests/conftest.py without CUDA)"
)


def _run(coro: Any) -> Any:
    return asyncio.run(coro)


def settings_for(backbone: Path, heads: Path, **overrides: Any) -> Settings:
    return Settings(backbone=str(backbone), heads_dir=[heads], **overrides)


def test_the_kernel_flag_wins_over_its_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SIDETASK_KERNEL", "triton")
    args = build_parser().parse_args(["serve", "--kernel", "torch"])
    settings = settings_from_args(args)
    assert settings.kernel == "torch"
    assert EngineConfig.from_settings(settings).kernel == "torch"
    assert settings_from_args(build_parser().parse_args(["serve"])).kernel == "triton"


@needs_interpreter
def test_a_checked_kernel_is_shown_in_tasks_and_metrics(
    tiny_roberta_dir: Path, heads_root: Path
) -> None:
    settings = settings_for(tiny_roberta_dir, heads_root, kernel="triton")

    async def go() -> None:
        async with running(create_app(settings, loading.build_engine)) as c:
            assert (await c.get("/tasks")).json()["kernel"] == "triton"
            metrics = (await c.get("/metrics")).text
            assert 'sidetask_kernel_info{path="triton"} 1.0' in metrics
            assert 'sidetask_kernel_info{path="torch"}' not in metrics

    _run(go())


def test_the_torch_path_is_shown_in_tasks_and_metrics(make_app: Any) -> None:
    async def go() -> None:
        async with running(make_app()) as c:
            assert (await c.get("/tasks")).json()["kernel"] == "torch"
            assert 'sidetask_kernel_info{path="torch"} 1.0' in (await c.get("/metrics")).text

    _run(go())


@needs_interpreter
def test_forced_triton_that_fails_its_check_never_becomes_ready(
    tiny_roberta_dir: Path, heads_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def wrong(acc: Any, z: Any, w: Any, segments: tuple[Segment, ...]) -> None:
        accumulate_triton(acc, z, w, segments)
        acc.mul_(1.5)

    checked = functools.partial(
        kernel_check.choose_kernel,
        verify=functools.partial(kernel_check.verify_kernel, kernel=wrong),
    )
    monkeypatch.setattr(loading, "choose_kernel", checked)
    settings = settings_for(tiny_roberta_dir, heads_root, kernel="triton")
    app = create_app(settings, loading.build_engine)

    async def go() -> None:
        async with running(app, wait_ready=False) as c:
            state = app.state.sidetask
            deadline = time.monotonic() + 60
            while state.load_error is None:
                assert time.monotonic() < deadline, "start-up neither failed nor finished"
                await asyncio.sleep(0.01)
            r = await c.get("/readyz")
            assert r.status_code == 503
            message = r.json()["error"]["message"]
            assert message == "start-up failed: kernel check (see the server log)"
            assert "differs from the torch path" in state.load_error  # logged, not shown

    _run(go())
