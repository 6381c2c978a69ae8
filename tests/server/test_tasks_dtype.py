"""GET /tasks says which dtype the backbone runs in, what was asked, and why."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from gate_files import write_gate

from engine.core import Engine, EngineConfig
from engine.dtype_choice import Hardware, fingerprint
from engine.loading import load_backbone_with_dtype, load_heads
from models.backbone import Backbone
from server.settings import Settings


def gated_factory(gates: Path, hardware: Hardware) -> Any:
    """Build engines as build_engine does, with a gate folder and hardware of the test's."""

    def factory(settings: Settings) -> Engine:
        backbone, dtype = load_backbone_with_dtype(settings, gates, hardware)
        heads = load_heads(settings, backbone)
        config = EngineConfig.from_settings(settings, None, backbone.device)
        return Engine(backbone, heads, config, dtype_choice=dtype)

    return factory


def tasks_body(app: Any, client_for: Any) -> dict[str, Any]:
    async def go() -> dict[str, Any]:
        async with client_for(app) as c:
            body: dict[str, Any] = (await c.get("/tasks")).json()
            return body

    return asyncio.run(go())


def test_tasks_shows_what_auto_resolved_to_and_why(
    make_app: Any,
    client_for: Any,
    tiny_roberta: Backbone,
    heads_root: Path,
    tmp_path: Path,
) -> None:
    write_gate(tmp_path, fingerprint(tiny_roberta.info, [heads_root]))
    fast = gated_factory(tmp_path, Hardware(cpu_fast_bf16=True))
    body = tasks_body(make_app(dtype="auto", factory=fast), client_for)
    assert (body["dtype"], body["dtype_setting"]) == ("bfloat16", "auto")
    assert "gate passed" in body["dtype_reason"]

    slow = gated_factory(tmp_path, Hardware(cpu_fast_bf16=False))
    body = tasks_body(make_app(dtype="auto", factory=slow), client_for)
    assert (body["dtype"], body["dtype_setting"]) == ("float32", "auto")
    assert "no native bf16" in body["dtype_reason"]


def test_tasks_shows_an_explicit_dtype(make_app: Any, client_for: Any, tmp_path: Path) -> None:
    factory = gated_factory(tmp_path, Hardware(cpu_fast_bf16=True))
    body = tasks_body(make_app(dtype="float32", factory=factory), client_for)
    assert (body["dtype"], body["dtype_setting"], body["dtype_reason"]) == (
        "float32",
        "float32",
        "set explicitly",
    )
