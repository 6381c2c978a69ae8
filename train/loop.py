"""Train one head on cached backbone states: AdamW, ReduceLROnPlateau on the validation
metric, early stopping, best head kept, resumable, JSONL log and plots next to the head;
then temperature and a single dev score (``train/protocol.py``).

:func:`train` chains four steps: the data (``train/prepare.py``), the optimiser state and
the evaluate-and-checkpoint step (``train/steps.py``), and the epochs (here).
"""

from __future__ import annotations

import random
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from models.defaults import open_backbone
from train.batches import load_batch, plan
from train.config import TrainConfig
from train.kinds import train_kind
from train.objective import batch_loss, recase_some
from train.prepare import Prepared, dataset_name, prepare_data
from train.protocol import finish
from train.refit import SELECTION_DIR, refit
from train.steps import (
    LOG_FILE,
    Stretch,
    TrainState,
    eval_line,
    evaluate_and_checkpoint,
    start_optimisation,
    write_plots,
)

__all__ = ["LOG_FILE", "dataset_name", "train"]

Schedule = list[tuple[int, Any]]  # (training file, the units of one batch) in step order


def train(cfg: TrainConfig) -> dict[str, Any]:
    """Run one training; returns the best dev metrics. The head is saved in ``cfg.out``
    (with ``cfg.refit``: the refit head, its selection run in ``cfg.out/selection``).

    A bad setting has already been refused when ``cfg`` was built; a clash with the data
    raises :class:`train.config.ConfigError` before the first step."""
    torch.set_num_threads(cfg.threads)
    random.seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    out = Path(cfg.out)
    chosen = out / SELECTION_DIR if cfg.refit else out  # where the selection run's head goes
    chosen.mkdir(parents=True, exist_ok=True)
    data = prepare_data(cfg, open_backbone(cfg.backbone, device), device)
    state = start_optimisation(cfg, data, chosen)
    for epoch in range(int(state.progress["epoch"]), cfg.epochs):
        if run_epoch(cfg, data, state, epoch):
            break
    best = state.best_results
    if best:
        final = finish(chosen, cfg, data.vals, data.devs, data.backbone, device)
        best = {**best, "dev": final["dev"], "val": final["val"]}
    write_plots(chosen, cfg)
    if best and cfg.refit:
        refitted = refit(cfg, chosen, out, data.backbone, device)
        best = {**best, "selection_dev": best["dev"], "dev": refitted["dev"]}
        write_plots(out, cfg)
    return best


def epoch_schedule(cfg: TrainConfig, data: Prepared, epoch: int) -> tuple[Schedule, set[int]]:
    """This epoch's batches of every training file, shuffled together (seeded by epoch), and
    the steps after which it evaluates (``evals_per_epoch``, evenly spaced, the last one at
    the end of the epoch)."""
    schedule = [
        (si, units)
        for si, s in enumerate(data.splits)
        for units in plan(s, cfg.kind, cfg.batch_tokens, True, cfg.seed * 1000 + epoch)
    ]
    random.Random(cfg.seed * 7919 + epoch).shuffle(schedule)
    eval_at = {
        round(len(schedule) * (j + 1) / cfg.evals_per_epoch) - 1 for j in range(cfg.evals_per_epoch)
    }
    return schedule, eval_at


def run_epoch(cfg: TrainConfig, data: Prepared, state: TrainState, epoch: int) -> bool:
    """One pass over the training data, evaluating at the planned steps; True when early
    stopping ends the run."""
    schedule, eval_at = epoch_schedule(cfg, data, epoch)
    state.head.train()
    stretch = Stretch()
    bar = tqdm(schedule, desc=f"{cfg.task} epoch {epoch + 1}/{cfg.epochs}", mininterval=5)
    try:
        for i, (si, units) in enumerate(bar):
            stretch.add(*train_step(cfg, data, state, si, units))
            if state.progress["step"] % 20 == 0:
                recent = stretch.losses[-50:]
                bar.set_postfix(
                    loss=f"{sum(recent) / len(recent):.4f}", best=state.progress["best"]
                )
            if i not in eval_at:
                continue
            epoch_done = i == len(schedule) - 1
            record, stop = evaluate_and_checkpoint(cfg, data, state, stretch, epoch, epoch_done)
            bar.write(eval_line(record))
            if stop:
                return True
    finally:
        bar.close()
    return False


def train_step(
    cfg: TrainConfig, data: Prepared, state: TrainState, si: int, units: Any
) -> tuple[float, int]:
    """One optimiser step on one batch of training file ``si``: (its weighted loss, the
    texts it held)."""
    split = data.splits[si]
    batch = load_batch(split, cfg.kind, units, data.groups[si])
    if cfg.case_dropout > 0 or cfg.case_upper > 0:
        batch = recase_some(
            batch, cfg.case_dropout, cfg.case_upper, cfg.seed * 100_003 + state.progress["step"]
        )
    batch = batch.to(data.device)
    with autocast(data.device):
        loss = batch_loss(state.head, batch, cfg, data.class_weight) * data.weights[si]
    state.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    state.optimizer.step()
    if state.averaged is not None:
        state.averaged.update_parameters(state.head)
    state.progress["step"] += 1
    by_text = train_kind(cfg.kind).by_text  # units are texts, else windows
    texts = len(units) if by_text else len(set(split.win_text[units].tolist()))
    return loss.item(), texts


def autocast(device: torch.device) -> AbstractContextManager[Any]:
    """bf16 autocast on CUDA; full precision on CPU."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return nullcontext()
