"""Describe the loaded heads and swap in a freshly scanned head set (hot reload)."""

from __future__ import annotations

import asyncio
import logging

import torch

from engine.loading import load_heads
from heads.io import HeadLoadError
from heads.registry import HeadSet
from heads.task_head import TaskHead
from server.errors import ApiError, ErrorKind
from server.schemas import HeadInfo, LoadFailureInfo, ReloadResponse, TasksResponse
from server.state import AppState

log = logging.getLogger("sidetask.heads")


def head_info(head: TaskHead) -> HeadInfo:
    with torch.no_grad():
        weights = [float(w) for w in head.mixer.layer_weights().detach().cpu()]
    nonzero = [i for i, w in enumerate(weights) if w > 0]
    m = head.manifest
    return HeadInfo(
        name=m.name,
        kind=m.kind,
        labels=list(m.labels),
        version=m.version,
        description=m.description,
        k=m.k,
        layer_weights=weights,
        last_layer=max(nonzero) if nonzero else len(weights) - 1,
        metrics=dict(m.metrics),
        parameters=head.parameter_count(),
        temperature=m.temperature,
        threshold=m.threshold if "threshold" in head.kind.options else None,
    )


def describe(state: AppState) -> TasksResponse:
    engine = state.loaded_engine()
    info = engine.backbone.info
    heads = engine.heads
    choice = engine.dtype_choice
    return TasksResponse(
        backbone=info.name,
        model_type=info.model_type,
        num_layers=info.num_layers,
        max_length=info.max_length,
        main_task=engine.main_task,
        kernel=engine.kernel_path,
        dtype=choice.name,
        dtype_setting=choice.setting,
        dtype_reason=choice.reason,
        accumulator_dtype=str(heads.dtype).removeprefix("torch."),
        head_layers_dtype=str(heads.module_dtype).removeprefix("torch."),
        heads=[head_info(heads.heads[n]) for n in heads.names],
        failures=[LoadFailureInfo(folder=f.folder, error=f.error) for f in heads.failures],
    )


def publish_model(state: AppState) -> None:
    """Refresh the model_info and heads_loaded metrics from the engine."""
    engine = state.loaded_engine()
    versions = {n: h.manifest.version for n, h in engine.heads.heads.items()}
    state.metrics.set_model(engine.backbone.info.name, versions, engine.kernel_path)


def _same(a: TaskHead, b: TaskHead) -> bool:
    if a.manifest != b.manifest:
        return False
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def _scan(state: AppState) -> HeadSet:
    engine = state.loaded_engine()
    heads = load_heads(state.settings, engine.backbone)
    if heads.names:
        heads.plan_for(heads.names)  # build the fused plan here, not in the first request
    return heads


async def reload_heads(state: AppState) -> ReloadResponse:
    """Re-scan the heads folders; swap atomically, or keep the old set on any load error."""
    engine = state.loaded_engine()
    async with state.reload_lock:
        old = engine.heads
        try:
            new = await asyncio.to_thread(_scan, state)
        except HeadLoadError as exc:
            log.error("reload refused, keeping the old heads: %s", exc)
            raise ApiError(
                ErrorKind.HEAD_INVALID, f"reload refused, old heads kept: {exc}"
            ) from exc
        engine.swap_heads(new)
        publish_model(state)
    added = sorted(set(new.heads) - set(old.heads))
    removed = sorted(set(old.heads) - set(new.heads))
    updated = sorted(
        n for n in set(new.heads) & set(old.heads) if not _same(old.heads[n], new.heads[n])
    )
    log.info(
        "heads reloaded: %s (added %s, removed %s, updated %s)", new.names, added, removed, updated
    )
    return ReloadResponse(
        heads=new.names,
        added=added,
        removed=removed,
        updated=updated,
        failures=[LoadFailureInfo(folder=f.folder, error=f.error) for f in new.failures],
    )
