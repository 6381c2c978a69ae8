"""Steps 2 and 4 of a training run (``train/loop.py``): the optimiser state (AdamW,
ReduceLROnPlateau on the selection metric, the weight average, resume), and what happens at
each evaluation: score the selection sets, log, keep the best head, checkpoint, and decide
whether to stop early."""

from __future__ import annotations

import json
import os
import platform
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch.optim.swa_utils import AveragedModel

from heads.io import save_head
from heads.manifest import HeadManifest
from heads.task_head import TaskHead, fingerprint_of
from models.backbone import Backbone
from train.averaging import evaluated_head, weight_average
from train.checkpoint import load_checkpoint, save_checkpoint
from train.config import TrainConfig
from train.plots import plot_curves, plot_layer_weights
from train.prepare import Prepared
from train.protocol import evaluate_sets, flat_metrics

LOG_FILE = "train_log.jsonl"


@dataclass
class TrainState:
    """The head, its optimiser and how far the run got (what a checkpoint restores)."""

    out: Path
    head: TaskHead
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.ReduceLROnPlateau
    averaged: AveragedModel | None
    progress: dict[str, Any]  # epoch, step, best, bad_evals, seconds, examples
    best_results: dict[str, Any] = field(default_factory=dict)  # of this process's best eval

    @property
    def log_path(self) -> Path:
        return self.out / LOG_FILE


@dataclass
class Stretch:
    """The training steps since the last evaluation: their losses, texts and start time."""

    losses: list[float] = field(default_factory=list)
    seen: int = 0
    started: float = field(default_factory=time.perf_counter)

    def add(self, loss: float, texts: int) -> None:
        self.losses.append(loss)
        self.seen += texts

    def account(self, progress: dict[str, Any]) -> float:
        """Add this stretch's seconds and texts to ``progress``; its texts per second."""
        elapsed = time.perf_counter() - self.started
        progress["seconds"] += elapsed
        progress["examples"] += self.seen
        return self.seen / max(elapsed, 1e-9)

    def restart(self) -> None:
        self.losses, self.seen, self.started = [], 0, time.perf_counter()


def new_head(cfg: TrainConfig, backbone: Backbone, labels: list[str]) -> TaskHead:
    info = backbone.info
    manifest = HeadManifest(
        name=cfg.task,
        version=cfg.version,
        kind=cfg.kind,
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
        threshold=cfg.threshold,
        backbone=fingerprint_of(info),
        description=cfg.description,
    )
    return TaskHead(manifest)


def start_optimisation(cfg: TrainConfig, data: Prepared, out: Path) -> TrainState:
    """A new head with AdamW, the plateau schedule and the weight average; with
    ``cfg.resume`` all of it (and the progress) restored from ``out``'s checkpoint."""
    head = new_head(cfg, data.backbone, data.labels).to(data.device)
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
    state = TrainState(out, head, optimizer, scheduler, averaged, progress)
    if cfg.resume:
        restored = load_checkpoint(out, head, optimizer, scheduler, averaged)
        if restored is not None:
            state.progress = restored
    elif state.log_path.exists():
        state.log_path.unlink()
    return state


def evaluate_and_checkpoint(
    cfg: TrainConfig,
    data: Prepared,
    state: TrainState,
    stretch: Stretch,
    epoch: int,
    epoch_done: bool,
) -> tuple[dict[str, Any], bool]:
    """Score the selection sets, log, step the schedule, keep the head if it improved and
    write the checkpoint. Returns (the log record, whether to stop early)."""
    progress = state.progress
    rate = stretch.account(progress)
    scored = evaluated_head(state.head, state.averaged)
    results = evaluate_sets(scored, data.selection_sets, data.backbone, cfg, data.device)
    state.head.train()
    value = float(results["selection"])
    state.scheduler.step(value)
    improved = progress["best"] is None or value > progress["best"]
    record = eval_record(cfg, data, state, stretch, epoch, results, rate, improved)
    with state.log_path.open("a") as fh:
        fh.write(json.dumps(record) + "\n")
    stretch.restart()
    if improved:
        progress["best"], progress["bad_evals"] = value, 0
        state.best_results = results
        save_best(scored, cfg, data, state)
    else:
        progress["bad_evals"] += 1
    progress["epoch"] = epoch + (1 if epoch_done else 0)
    save_checkpoint(
        state.out, state.head, state.optimizer, state.scheduler, progress, state.averaged
    )
    return record, progress["bad_evals"] > cfg.patience


def eval_line(record: dict[str, Any]) -> str:
    """The progress bar's line for one evaluation."""
    return (
        f"eval epoch {record['epoch']} step {record['step']}: "
        f"{record['selected_on']} {record['metric']} {record['selection']:.4f} "
        f"loss {record['train_loss']:.4f} ({record['examples_per_second']:.0f} ex/s)"
    )


def eval_record(
    cfg: TrainConfig,
    data: Prepared,
    state: TrainState,
    stretch: Stretch,
    epoch: int,
    results: dict[str, Any],
    rate: float,
    improved: bool,
) -> dict[str, Any]:
    """One line of the training log (``train_log.jsonl``)."""
    scored = evaluated_head(state.head, state.averaged)
    return {
        "event": "eval",
        "epoch": epoch + 1,
        "step": state.progress["step"],
        "train_loss": sum(stretch.losses) / len(stretch.losses),
        "selection": float(results["selection"]),
        "selected_on": "val" if data.vals else "dev",
        "metric": cfg.selection_metric,
        "metrics": flat_metrics(results),
        "lr": state.optimizer.param_groups[0]["lr"],
        "examples_per_second": rate,
        "layer_weights": [float(x) for x in scored.mixer.layer_weights().detach().cpu()],
        "improved": improved,
    }


def save_best(head: TaskHead, cfg: TrainConfig, data: Prepared, state: TrainState) -> None:
    """Save ``head`` with its results and how it was trained in the manifest."""
    progress = state.progress
    training = {
        "config": {k: v for k, v in cfg.to_dict().items() if k not in {"out", "resume"}},
        "train_examples": [s.num_examples for s in data.splits],
        "validation": data.held_out,
        "selection_metric": cfg.selection_metric,
        "best_step": progress["step"],
        "train_seconds": round(progress["seconds"], 1),
        "cache_seconds": round(data.cache_seconds, 1),
        "train_examples_per_second": round(
            progress["examples"] / max(progress["seconds"], 1e-9), 1
        ),
        "machine": machine(),
        "torch": torch.__version__,
        "parameters": head.parameter_count(),
    }
    metrics = flat_metrics(state.best_results)
    head.manifest = head.manifest.model_copy(
        update={"training": training, "metrics": metrics, "labels": data.labels}
    )
    save_head(head, state.out)


def machine() -> str:
    if torch.cuda.is_available():
        return f"{torch.cuda.get_device_name(0)} (CUDA)"
    return f"{platform.machine()} CPU ({os.cpu_count()} cores), {torch.get_num_threads()} threads"


def read_log(folder: Path) -> list[dict[str, Any]]:
    """The records of ``folder``'s training log, in order."""
    lines = (folder / LOG_FILE).read_text().splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def write_plots(out: Path, cfg: TrainConfig) -> None:
    """Layer weights and learning curves of the saved head, next to it."""
    log_path = out / LOG_FILE
    if not log_path.exists() or not (out / "manifest.json").exists():
        return
    log = read_log(out)
    from heads.io import load_head

    head = load_head(out)
    weights = [float(x) for x in head.mixer.layer_weights().detach()]
    title = f"{cfg.task}: {cfg.mixing} mixing, k={cfg.k}, alpha={cfg.alpha}"
    plot_layer_weights(weights, title, out / "layer_weights.png")
    plot_curves(log, cfg.selection_metric, title, out / "learning_curves.png")
