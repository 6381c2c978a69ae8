"""Evaluate a saved head through the server's engine (the path users' requests take)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from heads.io import load_head, read_manifest, save_head
from heads.registry import HeadSet
from heads.task_head import TaskHead
from models.backbone import Backbone
from train.data import Example, case_view, read_examples
from train.evaluate import predict_engine, score


def make_engine(backbone: Backbone, head: TaskHead, overlap: int = 64) -> Any:
    from engine.core import Engine, EngineConfig
    from engine.settings import EngineSettings

    heads = HeadSet({head.name: head}, device=backbone.device, dtype=backbone.dtype)
    return Engine(
        backbone,
        heads,
        EngineConfig.from_settings(EngineSettings(window_overlap=overlap, kernel="torch")),
    )


def evaluate_head(
    head_dir: str | Path,
    examples: list[Example],
    backbone: Backbone,
    overlap: int = 64,
) -> dict[str, Any]:
    """Metrics of the head in ``head_dir`` on ``examples``, predicted by the engine."""
    head = load_head(head_dir, backbone.info, backbone.device)
    engine = make_engine(backbone, head, overlap)
    with torch.inference_mode():
        preds = predict_engine(engine, head.name, examples, head.labels)
    return score(head, examples, preds)


def evaluate_views(
    head_dir: str | Path,
    examples: list[Example],
    backbone: Backbone,
    views: list[str],
    overlap: int = 64,
) -> dict[str, Any]:
    """Metrics of the head on each case view of ``examples`` (``as-is``, ``lower``,
    ``upper``) through the engine, and the mean of the headline metric over the views
    (entity F1 for token heads, accuracy otherwise)."""
    per_view = {
        v: evaluate_head(head_dir, case_view(examples, v), backbone, overlap) for v in views
    }
    metric = "f1" if "f1" in next(iter(per_view.values())) else "accuracy"
    mean = sum(float(r[metric]) for r in per_view.values()) / len(per_view)
    return {"views": per_view, "metric": metric, "mean": mean}


def record_slice_metrics(
    head_dir: str | Path,
    dev_files: list[tuple[str, str]],
    backbone: Backbone,
    slice_size: int = 200,
    fmt: str = "auto",
    overlap: int = 64,
) -> dict[str, float]:
    """Score the first ``slice_size`` examples of each dev file through the engine and store
    them in the manifest as ``<name>200_<metric>`` (what tests/heads/test_pretrained.py checks)."""
    recorded: dict[str, float] = {}
    for name, path in dev_files:
        examples = read_examples(path, fmt)[:slice_size]
        result = evaluate_head(head_dir, examples, backbone, overlap)
        for key in ("accuracy", "mcc", "precision", "recall", "f1", "correct", "n"):
            if key in result:
                recorded[f"{name}{slice_size}_{key}"] = float(result[key])
    head = load_head(head_dir)
    manifest = read_manifest(head_dir)
    head.manifest = manifest.model_copy(update={"metrics": {**manifest.metrics, **recorded}})
    save_head(head, head_dir)
    return recorded


def write_json(path: str | Path, data: dict[str, Any]) -> None:
    Path(path).write_text(json.dumps(data, indent=2) + "\n")
