"""The selection protocol around one training run (docs/quality.md, "Protocol").

1. A validation split is carved from each training file (``train/validation.py``).
2. Every evaluation while training scores the validation split (for token heads with
   ``select_case="all"``: its as-is, lower-cased and upper-cased views, averaged); early
   stopping, the learning-rate schedule and the checkpoint kept follow it.
3. After training, :func:`finish` fits the temperature on the validation split, then scores
   the dev files once with the head the run kept, and records both in the manifest.

With ``val_fraction=0`` the run selects on dev as before (recorded as ``selected_on: dev``):
its dev numbers are then optimistic and not comparable with protocol runs.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch

from heads.io import load_head, save_head
from heads.task_head import TaskHead
from models.backbone import Backbone
from train.calibration import calibration_report, fit_temperature
from train.config import ConfigError, TrainConfig
from train.data import CASE_VIEWS, Example, case_view
from train.evaluate import predict_cached, score
from train.features import (
    CASED_TOKENIZER,
    CachedSplit,
    case_ids_of,
    ignores_case,
    with_case_ids,
)
from train.kinds import train_kind
from train.plots import plot_reliability
from train.validation import carve, describe, subset_split, val_name

RELIABILITY_PLOT = "reliability.png"


@dataclass
class EvalSet:
    """A scored set: its metric prefix, examples and cached states."""

    name: str
    examples: list[Example]
    split: CachedSplit


def evaluate_sets(
    head: TaskHead,
    sets: list[EvalSet],
    backbone: Backbone,
    cfg: TrainConfig,
    device: torch.device,
    constrained: bool = False,
) -> dict[str, Any]:
    """Metrics per set (engine-equivalent, from the cache) and the mean selection metric."""
    out: dict[str, Any] = {}
    values = []
    for s in sets:
        preds = predict_cached(
            head,
            s.split,
            s.examples,
            backbone.tokenizer,
            backbone.info.max_length,
            cfg.overlap,
            device=device,
            constrained=constrained,
        )
        result = score(head, s.examples, preds)
        out[s.name] = result
        values.append(float(result[cfg.selection_metric]))
    out["selection"] = sum(values) / len(values)
    return out


def flat_metrics(results: dict[str, Any], prefix: str = "") -> dict[str, float]:
    flat: dict[str, float] = {}
    for name, result in results.items():
        if not isinstance(result, dict):
            continue
        for key in ("accuracy", "mcc", "precision", "recall", "f1", "macro_f1", "correct", "n"):
            if key in result:
                flat[f"{name}{prefix}_{key}"] = float(result[key])
    return flat


def carve_validation(
    cfg: TrainConfig,
    names: list[str],
    train_sets: list[list[Example]],
    splits: list[CachedSplit],
) -> tuple[list[list[Example]], list[CachedSplit], list[EvalSet], list[dict[str, object]]]:
    """(training examples, training splits, validation sets, what was held out) per file."""
    if cfg.val_fraction == 0:
        return train_sets, splits, [], []
    kept_ex, kept_splits, vals, record = [], [], [], []
    for name, examples, split in zip(names, train_sets, splits, strict=True):
        try:
            tr, va = carve(len(examples), cfg.val_fraction, cfg.val_seed, cfg.val_block)
        except ValueError as exc:  # a file too small to hold texts out: say which flag
            raise ConfigError(
                f"{name}: {exc}; add texts, or --val-fraction 0 to select on the dev files"
            ) from exc
        kept_ex.append([examples[i] for i in tr])
        kept_splits.append(subset_split(split, tr))
        vals.append(EvalSet(val_name(name), [examples[i] for i in va], subset_split(split, va)))
        record.append(describe(name, len(examples), tr, va))
    return kept_ex, kept_splits, vals, record


def case_views(sets: list[EvalSet], backbone: Backbone, cfg: TrainConfig) -> list[EvalSet]:
    """Each set, then its lower-cased and upper-cased views (named ``<set>_lower``/``_upper``).

    The cached states are reused, which is right only when the tokenizer ignores case
    (the default MiniLM is uncased); a cased tokenizer is refused.
    """
    tok, length = backbone.tokenizer, backbone.info.max_length
    out: list[EvalSet] = []
    for s in sets:
        out.append(s)
        if not ignores_case(tok, s.examples):
            raise ConfigError(CASED_TOKENIZER)
        for view in CASE_VIEWS[1:]:
            examples = case_view(s.examples, view)
            split = replace(
                s.split, case_ids=case_ids_of(s.split, examples, tok, length, cfg.overlap)
            )
            out.append(EvalSet(f"{s.name}_{view}", examples, split))
    return out


def with_case(sets: list[EvalSet], backbone: Backbone, cfg: TrainConfig) -> list[EvalSet]:
    """The sets with the casing classes of their own texts (token heads with case features)."""
    tok, length = backbone.tokenizer, backbone.info.max_length
    return [
        EvalSet(s.name, s.examples, with_case_ids(s.split, s.examples, tok, length, cfg.overlap))
        for s in sets
    ]


def _logits_and_gold(head: TaskHead, s: EvalSet, device: torch.device) -> tuple[Any, list[int]]:
    return train_kind(head.kind).calibration_data(head, s.split, s.examples, device)


def finish(
    out: Path,
    cfg: TrainConfig,
    vals: list[EvalSet],
    devs: list[EvalSet],
    backbone: Backbone,
    device: torch.device,
) -> dict[str, Any]:
    """Calibrate the kept head on validation, score dev once, record both in the manifest."""
    head = load_head(out).to(device)
    if cfg.calibrate and vals:
        pairs = [_logits_and_gold(head, v, device) for v in vals]
        all_logits = torch.cat([p[0] for p in pairs])
        all_gold = torch.tensor([y for p in pairs for y in p[1]])
        head.set_temperature(fit_temperature(all_logits, all_gold))
    t = head.manifest.temperature
    scored_vals = case_views(vals, backbone, cfg) if cfg.select_case == "all" else vals
    views = head.case_features and cfg.select_case == "all"
    scored_devs = case_views(devs, backbone, cfg) if views else devs
    results = {
        "val": evaluate_sets(head, scored_vals, backbone, cfg, device) if vals else {},
        "dev": evaluate_sets(head, scored_devs, backbone, cfg, device),
    }
    metrics = flat_metrics(results["val"]) | flat_metrics(results["dev"])
    if train_kind(head.kind).constrained_decoding:
        viterbi = evaluate_sets(head, scored_vals + scored_devs, backbone, cfg, device, True)
        metrics |= flat_metrics({f"{k}_viterbi": v for k, v in viterbi.items()})
    curves: dict[str, Any] = {}
    for s in [*vals, *devs]:
        logits, gold = _logits_and_gold(head, s, device)
        # the logits above are already divided by t; report T = 1 against them as "raw"
        report = calibration_report(logits * t, gold, t)
        metrics[f"{s.name}_ece"] = report["ece"]
        metrics[f"{s.name}_ece_raw"] = report["ece_raw"]
        curves[s.name] = report
    calibration = {"temperature": t, "fitted_on": [v.name for v in vals] or None}
    training = dict(head.manifest.training)
    training["protocol"] = {
        "selected_on": "val" if vals else "dev",
        "dev_scored": "once, after selection" if vals else "at every evaluation (legacy)",
        "select_case": cfg.select_case,
        "calibration": calibration,
    }
    head.manifest = head.manifest.model_copy(
        update={"metrics": {**head.manifest.metrics, **metrics}, "training": training}
    )
    save_head(head, out)
    plot_reliability(
        {name: (c["bins_raw"], c["bins"]) for name, c in curves.items()},
        f"{cfg.task}: reliability (T = {t:.2f})",
        out / RELIABILITY_PLOT,
    )
    return results
