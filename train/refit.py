"""``--refit``: choose the budget on the validation split, then train on every text.

Holding out a validation split costs training data (CoLA: 900 of 8,551 sentences). With
``--refit`` the run trains twice. The selection run (in ``OUT/selection``, a complete head
folder) makes every choice on validation, as without the flag: the evaluation point whose
head it keeps, and the learning rates ReduceLROnPlateau set on the way there. The refit run
then starts a new head from the same seed and trains it on all texts of each training file,
validation included, for the same number of passes, with those learning rates replayed at
the same points of each epoch, and keeps the head it has at the kept point (its weight
average with ``--ema``): no evaluation, no early stopping, nothing read from dev.

No text is left to fit a temperature on, so the refit head takes the selection run's (fitted
on validation with the selection head). Dev is then scored once, with the refit head; the
selection head's validation and dev metrics are kept next to it (``selection_<key>``), so
seeds are picked on ``selection_<data>_val_<metric>``.
"""

from __future__ import annotations

import json
import random
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from heads.io import load_head, read_manifest, save_head
from models.backbone import Backbone
from train.averaging import evaluated_head
from train.config import TrainConfig
from train.prepare import prepare_data
from train.protocol import finish
from train.steps import TrainState, read_log, save_best, start_optimisation

SELECTION_DIR = "selection"


def budget(log: list[dict[str, Any]], points: int = 0) -> tuple[int, list[float]]:
    """From a selection run's log: how many evaluation points the refit runs through and the
    learning rate set after each. By default up to and including the point whose head the run
    kept; ``points`` > 0 sets the count instead (a budget chosen on the validation curves of
    several seeds), the run's last learning rate held past its end."""
    evals = [r for r in log if r.get("event") == "eval"]
    kept = [i for i, r in enumerate(evals) if r.get("improved")]
    if not kept:
        raise ValueError("the selection run kept no head: nothing to refit")
    lrs = [float(r["lr"]) for r in evals]
    if points <= 0:
        points = kept[-1] + 1
    return points, (lrs + lrs[-1:] * points)[:points]


def refit(
    cfg: TrainConfig, selection: Path, out: Path, backbone: Backbone, device: torch.device
) -> dict[str, Any]:
    """Train the refit head into ``out`` for the budget ``selection`` chose; score dev once.

    Returns the refit head's dev results (as :func:`train.protocol.finish`)."""
    points, lrs = budget(read_log(selection), cfg.refit_epochs * cfg.evals_per_epoch)
    chosen = read_manifest(selection)
    all_cfg = replace(cfg, val_fraction=0.0, refit=False, refit_epochs=0, out=str(out))
    random.seed(cfg.seed)
    torch.manual_seed(cfg.seed)  # the selection run's initial head
    data = prepare_data(all_cfg, backbone, device)
    state = start_optimisation(all_cfg, data, out)
    log = run(all_cfg, data, state, points, lrs)
    head = evaluated_head(state.head, state.averaged)
    head.set_temperature(chosen.temperature)
    save_best(head, cfg, data, state)  # records the command's own config
    result = finish(out, replace(all_cfg, calibrate=False), [], data.devs, backbone, device)
    record(out, cfg, chosen, points, log)
    return result


def run(
    cfg: TrainConfig, data: Any, state: TrainState, points: int, lrs: list[float]
) -> list[dict[str, Any]]:
    """The epochs over all texts up to evaluation point ``points``, the learning rate set
    after point ``i`` to ``lrs[i]``; one log line per point."""
    from train.loop import epoch_schedule, train_step  # the loop imports this module

    state.head.train()
    passed, log, losses = 0, [], []
    started = time.perf_counter()
    for epoch in range(cfg.epochs):
        schedule, eval_at = epoch_schedule(cfg, data, epoch)
        for i, (si, units) in enumerate(schedule):
            loss, texts = train_step(cfg, data, state, si, units)
            losses.append(loss)
            state.progress["examples"] += texts
            if i not in eval_at:
                continue
            for group in state.optimizer.param_groups:
                group["lr"] = lrs[passed]
            passed += 1
            line = {
                "event": "refit",
                "epoch": epoch + 1,
                "step": state.progress["step"],
                "train_loss": sum(losses) / len(losses),
                "lr": lrs[passed - 1],
            }
            log.append(line)
            losses = []
            if passed == points:
                state.progress["seconds"] = time.perf_counter() - started
                state.progress["epoch"] = epoch + (1 if i == len(schedule) - 1 else 0)
                with state.log_path.open("w") as fh:
                    fh.writelines(json.dumps(r) + "\n" for r in log)
                return log
    raise ValueError(f"the selection run kept evaluation point {points}, past --epochs")


def record(
    out: Path, cfg: TrainConfig, chosen: Any, points: int, log: list[dict[str, Any]]
) -> None:
    """What the refit did, and the selection head's metrics, in the refit head's manifest."""
    head = load_head(out)
    training = dict(head.manifest.training)
    selection_training = chosen.training
    training["refit"] = {
        "selection_run": SELECTION_DIR,
        "budget": f"{cfg.refit_epochs} epochs (--refit-epochs, chosen on validation curves)"
        if cfg.refit_epochs
        else "the selection run's kept evaluation point, same passes over the data",
        "evaluation_points": points,
        "epochs": log[-1]["epoch"],
        "steps": log[-1]["step"],
        "selection_best_step": selection_training.get("best_step"),
        "selection_train_examples": selection_training.get("train_examples"),
        "learning_rates": [r["lr"] for r in log],
        "validation": selection_training.get("validation"),
    }
    protocol = dict(training.get("protocol", {}))
    protocol.update(
        selected_on="val (the selection run), then refit on train + val",
        dev_scored="once, with the refit head",
        calibration={
            "temperature": chosen.temperature,
            "fitted_on": (chosen.training.get("protocol") or {})
            .get("calibration", {})
            .get("fitted_on"),
            "head": "the selection run's (the refit head has no held-out text)",
        },
    )
    training["protocol"] = protocol
    ours = {f"selection_{k}": v for k, v in chosen.metrics.items()}
    head.manifest = head.manifest.model_copy(
        update={"training": training, "metrics": {**head.manifest.metrics, **ours}}
    )
    save_head(head, out)
