"""Train one head on cached backbone states: AdamW, ReduceLROnPlateau on the validation
metric, early stopping, best head kept, resumable, JSONL log and plots next to the head;
then temperature and a single dev score (``train/protocol.py``)."""

from __future__ import annotations

import json
import os
import platform
import random
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from heads.io import save_head
from heads.manifest import HeadManifest
from heads.task_head import TaskHead, fingerprint_of
from models.backbone import Backbone
from models.defaults import open_backbone
from train.averaging import evaluated_head, weight_average
from train.batches import load_batch, plan, windows_by_text
from train.checkpoint import load_checkpoint, save_checkpoint
from train.class_weights import class_weights
from train.config import TrainConfig
from train.data import Example, example_kind, read_examples, token_labels
from train.features import CachedSplit, build_cache, with_case_ids, with_upper_case_ids
from train.objective import batch_loss, file_weights, recase_some
from train.plots import plot_curves, plot_layer_weights
from train.protocol import (
    EvalSet,
    carve_validation,
    case_views,
    evaluate_sets,
    finish,
    flat_metrics,
)

LOG_FILE = "train_log.jsonl"


def dataset_name(path: str) -> str:
    """``../data/sst2/dev.tsv`` -> ``sst2_dev``: the prefix of this file's metrics."""
    p = Path(path)
    stem = p.name.split(".")[0]
    return f"{p.parent.name}_{stem}".replace("-", "_").lower() if p.parent.name else stem


def machine() -> str:
    if torch.cuda.is_available():
        return f"{torch.cuda.get_device_name(0)} (CUDA)"
    return f"{platform.machine()} CPU ({os.cpu_count()} cores), {torch.get_num_threads()} threads"


def resolve_labels(cfg: TrainConfig, examples: list[Example]) -> list[str]:
    if cfg.labels:
        return list(cfg.labels)
    if cfg.kind == "token":
        return token_labels(examples)
    values = sorted({e.label for e in examples if hasattr(e, "label")})  # type: ignore[union-attr]
    return sorted(values, key=lambda v: (not v.isdigit(), int(v) if v.isdigit() else 0, v))


def new_head(cfg: TrainConfig, backbone: Backbone, labels: list[str]) -> TaskHead:
    info = backbone.info
    manifest = HeadManifest(
        name=cfg.task,
        version=cfg.version,
        kind=cfg.kind,  # type: ignore[arg-type]
        labels=labels,
        k=cfg.k,
        alpha=cfg.alpha,
        cutoff=cfg.cutoff,
        mixing=cfg.mixing,  # type: ignore[arg-type]
        layer_logits=[0.0] * info.num_states,
        positions=cfg.positions,
        max_positions=max(info.max_length, 8),
        num_attention_heads=cfg.num_attention_heads,
        ff_dim=cfg.ff_dim,
        dropout=cfg.dropout,
        pooling=cfg.pooling,  # type: ignore[arg-type]
        block=cfg.block,  # type: ignore[arg-type]
        case_features=cfg.case_features,
        backbone=fingerprint_of(info),
        description=cfg.description,
    )
    return TaskHead(manifest)


def train(cfg: TrainConfig) -> dict[str, Any]:
    """Run one training; returns the best dev metrics. The head is saved in ``cfg.out``."""
    torch.set_num_threads(cfg.threads)
    random.seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    backbone = open_backbone(cfg.backbone, device)
    caps = cfg.max_examples or [None]  # type: ignore[list-item]
    if len(caps) not in (1, len(cfg.train)):
        raise SystemExit("--max-examples takes one value or one per training file")
    caps = caps * len(cfg.train) if len(caps) == 1 else caps
    weights = file_weights(cfg)
    train_sets = [
        read_examples(p, cfg.format, cap, cfg.seed) for p, cap in zip(cfg.train, caps, strict=True)
    ]
    if any(example_kind(ex) != cfg.kind for ex in train_sets):
        raise SystemExit(f"--kind {cfg.kind} does not match the training data")
    if cfg.pooling != "mean" and cfg.kind != "sequence":
        raise SystemExit("--pooling is for sequence heads (--kind sequence) only")
    if cfg.block != "attention" and cfg.kind != "sequence":
        raise SystemExit("--block is for sequence heads (--kind sequence) only")
    if not 0 <= cfg.label_smoothing < 1:
        raise SystemExit(f"--label-smoothing takes a share in [0, 1), got {cfg.label_smoothing}")
    if cfg.lr_patience < 0:
        raise SystemExit(f"--lr-patience takes a count >= 0, got {cfg.lr_patience}")
    if cfg.case_features and cfg.kind != "token":
        raise SystemExit("--case-features is for token heads (--kind token) only")
    if cfg.case_dropout and not (cfg.case_features and 0 < cfg.case_dropout < 1):
        raise SystemExit("--case-dropout takes a share in (0, 1) and needs --case-features")
    if cfg.case_upper and not (cfg.case_features and 0 < cfg.case_dropout + cfg.case_upper < 1):
        raise SystemExit(
            "--case-upper takes a share in (0, 1 - case dropout), needs --case-features"
        )
    if cfg.select_case not in ("as-is", "all"):
        raise SystemExit(f"--select-case takes as-is or all, got {cfg.select_case!r}")
    if cfg.select_case == "all" and not cfg.case_features:
        raise SystemExit("--select-case all is for token heads with --case-features")
    labels = resolve_labels(cfg, [e for ex in train_sets for e in ex])
    started = time.perf_counter()
    splits = [
        build_cache(
            backbone, ex, labels, cfg.cache_dir, cfg.overlap, desc=f"cache {dataset_name(p)}"
        )
        for p, ex in zip(cfg.train, train_sets, strict=True)
    ]
    devs = []
    for p in cfg.dev:
        ex = read_examples(p, cfg.format)
        devs.append(
            EvalSet(
                dataset_name(p),
                ex,
                build_cache(
                    backbone,
                    ex,
                    labels,
                    cfg.cache_dir,
                    cfg.overlap,
                    desc=f"cache {dataset_name(p)}",
                ),
            )
        )
    if cfg.case_features:
        tok, length = backbone.tokenizer, backbone.info.max_length
        splits = [
            with_case_ids(s, ex, tok, length, cfg.overlap)
            for s, ex in zip(splits, train_sets, strict=True)
        ]
        for dev in devs:
            dev.split = with_case_ids(dev.split, dev.examples, tok, length, cfg.overlap)
        if cfg.case_upper:
            splits = [
                with_upper_case_ids(s, ex, tok, length, cfg.overlap)
                for s, ex in zip(splits, train_sets, strict=True)
            ]
    train_sets, splits, vals, held_out = carve_validation(
        cfg, [dataset_name(p) for p in cfg.train], train_sets, splits
    )
    selection_sets = vals or devs
    if cfg.select_case == "all":
        selection_sets = case_views(selection_sets, backbone, cfg)
    all_examples = [e for ex in train_sets for e in ex]
    class_weight = class_weights(cfg.class_weights, all_examples, labels)
    if class_weight is not None:
        class_weight = class_weight.to(device)
    cache_seconds = time.perf_counter() - started

    head = new_head(cfg, backbone, labels).to(device)
    params = [p for p in head.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
        optimizer, mode="max", factor=0.5, patience=cfg.lr_patience
    )
    averaged = weight_average(head, cfg.ema)
    progress: dict[str, Any] = {
        "epoch": 0,
        "step": 0,
        "best": None,
        "bad_evals": 0,
        "seconds": 0.0,
        "examples": 0,
    }
    log_path = out / LOG_FILE
    if cfg.resume:
        restored = load_checkpoint(out, head, optimizer, scheduler, averaged)
        if restored is not None:
            progress = restored
    elif log_path.exists():
        log_path.unlink()
    groups = [windows_by_text(s) if cfg.kind == "sequence" else None for s in splits]
    amp = torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else nullcontext()
    metric = cfg.selection_metric
    best_results: dict[str, Any] = {}
    stop = False
    for epoch in range(int(progress["epoch"]), cfg.epochs):
        schedule = [
            (si, units)
            for si, s in enumerate(splits)
            for units in plan(s, cfg.kind, cfg.batch_tokens, True, cfg.seed * 1000 + epoch)
        ]
        random.Random(cfg.seed * 7919 + epoch).shuffle(schedule)
        eval_at = {
            round(len(schedule) * (j + 1) / cfg.evals_per_epoch) - 1
            for j in range(cfg.evals_per_epoch)
        }
        head.train()
        losses: list[float] = []
        t_epoch = time.perf_counter()
        seen = 0
        bar = tqdm(schedule, desc=f"{cfg.task} epoch {epoch + 1}/{cfg.epochs}", mininterval=5)
        for i, (si, units) in enumerate(bar):
            batch = load_batch(splits[si], cfg.kind, units, groups[si])
            if cfg.case_dropout > 0 or cfg.case_upper > 0:
                batch = recase_some(
                    batch, cfg.case_dropout, cfg.case_upper, cfg.seed * 100_003 + progress["step"]
                )
            batch = batch.to(device)
            with amp:
                loss = batch_loss(head, batch, cfg, class_weight) * weights[si]
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if averaged is not None:
                averaged.update_parameters(head)
            losses.append(loss.item())
            seen += (
                len(units)
                if cfg.kind == "sequence"
                else len(set(splits[si].win_text[units].tolist()))
            )
            progress["step"] += 1
            if progress["step"] % 20 == 0:
                bar.set_postfix(
                    loss=f"{sum(losses[-50:]) / len(losses[-50:]):.4f}", best=progress["best"]
                )
            if i not in eval_at:
                continue
            elapsed = time.perf_counter() - t_epoch
            progress["seconds"] += elapsed
            progress["examples"] += seen
            rate = seen / max(elapsed, 1e-9)
            scored = evaluated_head(head, averaged)
            results = evaluate_sets(scored, selection_sets, backbone, cfg, device)
            head.train()
            value = float(results["selection"])
            scheduler.step(value)
            improved = progress["best"] is None or value > progress["best"]
            record = {
                "event": "eval",
                "epoch": epoch + 1,
                "step": progress["step"],
                "train_loss": sum(losses) / len(losses),
                "selection": value,
                "selected_on": "val" if vals else "dev",
                "metric": metric,
                "metrics": flat_metrics(results),
                "lr": optimizer.param_groups[0]["lr"],
                "examples_per_second": rate,
                "layer_weights": [float(x) for x in scored.mixer.layer_weights().detach().cpu()],
                "improved": improved,
            }
            with log_path.open("a") as fh:
                fh.write(json.dumps(record) + "\n")
            bar.write(
                f"eval epoch {epoch + 1} step {progress['step']}: "
                f"{'val' if vals else 'dev'} {metric} {value:.4f} "
                f"loss {record['train_loss']:.4f} ({rate:.0f} ex/s)"
            )
            losses, seen, t_epoch = [], 0, time.perf_counter()
            if improved:
                progress["best"], progress["bad_evals"] = value, 0
                best_results = results
                _save_best(
                    scored, cfg, out, results, progress, cache_seconds, splits, labels, held_out
                )
            else:
                progress["bad_evals"] += 1
            progress["epoch"] = epoch + (1 if i == len(schedule) - 1 else 0)
            save_checkpoint(out, head, optimizer, scheduler, progress, averaged)
            if progress["bad_evals"] > cfg.patience:
                stop = True
                break
        bar.close()
        if stop:
            break
    if best_results:
        final = finish(out, cfg, vals, devs, backbone, device)
        best_results = {**best_results, "dev": final["dev"], "val": final["val"]}
    _write_plots(out, cfg)
    return best_results


def _save_best(
    head: TaskHead,
    cfg: TrainConfig,
    out: Path,
    results: dict[str, Any],
    progress: dict[str, Any],
    cache_seconds: float,
    splits: list[CachedSplit],
    labels: list[str],
    held_out: list[dict[str, object]],
) -> None:
    training = {
        "config": {k: v for k, v in cfg.to_dict().items() if k not in {"out", "resume"}},
        "train_examples": [s.num_examples for s in splits],
        "validation": held_out,
        "selection_metric": cfg.selection_metric,
        "best_step": progress["step"],
        "train_seconds": round(progress["seconds"], 1),
        "cache_seconds": round(cache_seconds, 1),
        "train_examples_per_second": round(
            progress["examples"] / max(progress["seconds"], 1e-9), 1
        ),
        "machine": machine(),
        "torch": torch.__version__,
        "parameters": head.parameter_count(),
    }
    head.manifest = head.manifest.model_copy(
        update={"training": training, "metrics": flat_metrics(results), "labels": labels}
    )
    save_head(head, out)


def _write_plots(out: Path, cfg: TrainConfig) -> None:
    log_path = out / LOG_FILE
    if not log_path.exists() or not (out / "manifest.json").exists():
        return
    log = [json.loads(line) for line in log_path.read_text().splitlines() if line.strip()]
    from heads.io import load_head

    head = load_head(out)
    weights = [float(x) for x in head.mixer.layer_weights().detach()]
    title = f"{cfg.task}: {cfg.mixing} mixing, k={cfg.k}, alpha={cfg.alpha}"
    plot_layer_weights(weights, title, out / "layer_weights.png")
    plot_curves(log, cfg.selection_metric, title, out / "learning_curves.png")
