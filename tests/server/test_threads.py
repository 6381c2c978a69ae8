"""torch threads when a CPU server is started without --threads: one core is left to the
event loop and the clients (server/threads.py); an explicit setting and GPUs are untouched."""

from __future__ import annotations

import asyncio
import os
from typing import Any

import pytest
from app_harness import engine_factory

from engine.core import Engine
from models.backbone import Backbone
from server.settings import Settings
from server.threads import serving_threads, usable_cores


@pytest.mark.parametrize(("cores", "expected"), [(1, 1), (2, 1), (4, 3), (16, 15)])
def test_an_empty_setting_leaves_one_core_on_a_cpu(cores: int, expected: int) -> None:
    assert serving_threads(Settings(), "cpu", cores) == expected


def test_an_explicit_setting_and_a_gpu_are_left_alone() -> None:
    assert serving_threads(Settings(threads=2), "cpu", 16) == 2
    assert serving_threads(Settings(), "cuda", 16) is None
    assert serving_threads(Settings(threads=3), "cuda", 16) == 3


def test_usable_cores_counts_this_process_s_cpus() -> None:
    """A container's CPU set, not the host's core count."""
    assert usable_cores() == len(os.sched_getaffinity(0))


@pytest.mark.parametrize("threads", [None, 3])
def test_the_server_builds_its_engine_with_the_resolved_threads(
    make_app: Any, client_for: Any, tiny_roberta: Backbone, threads: int | None
) -> None:
    seen: list[int | None] = []
    build = engine_factory(tiny_roberta)

    def factory(settings: Settings) -> Engine:
        seen.append(settings.threads)
        return build(settings)

    async def go() -> None:
        app = make_app(factory=factory, device="cpu", threads=threads)
        async with client_for(app) as c:
            assert (await c.post("/analyze", json={"texts": ["hello"]})).status_code == 200

    asyncio.run(go())
    assert seen == [threads if threads is not None else max(1, usable_cores() - 1)]


def test_the_engine_settings_say_what_empty_means_for_serve() -> None:
    """The flag's help and the env variable's docs are generated from this description."""
    assert "sidetask serve" in (Settings.model_fields["threads"].description or "")
