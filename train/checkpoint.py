"""Resumable training state without pickle: tensors in safetensors, the rest in JSON."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch.optim.swa_utils import AveragedModel

from heads.task_head import TaskHead
from train.config import ConfigError

STATE_DIR = "checkpoint"


def save_checkpoint(
    folder: str | Path,
    head: TaskHead,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.ReduceLROnPlateau,
    progress: dict[str, Any],
    averaged: AveragedModel | None = None,
) -> None:
    """Model, optimizer moments, scheduler, weight average and loop counters after an evaluation."""
    folder = Path(folder) / STATE_DIR
    folder.mkdir(parents=True, exist_ok=True)
    tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in head.state_dict().items()}
    if averaged is not None:
        tensors |= {
            f"ema.{k}": v.detach().cpu().contiguous() for k, v in averaged.state_dict().items()
        }
    opt = optimizer.state_dict()
    for pid, state in opt["state"].items():
        for name, value in state.items():
            if torch.is_tensor(value):
                tensors[f"optim.{pid}.{name}"] = value.detach().cpu().contiguous()
    meta = {
        "progress": progress,
        "optim_groups": opt["param_groups"],
        "optim_scalars": {
            str(pid): {n: v for n, v in s.items() if not torch.is_tensor(v)}
            for pid, s in opt["state"].items()
        },
        "scheduler": {k: v for k, v in scheduler.state_dict().items() if k != "_last_lr"}
        | {"_last_lr": [float(x) for x in scheduler.get_last_lr()]},
    }
    save_file(tensors, str(folder / "state.safetensors"))
    (folder / "state.json").write_text(json.dumps(meta, indent=2, default=float) + "\n")


def load_checkpoint(
    folder: str | Path,
    head: TaskHead,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.ReduceLROnPlateau,
    averaged: AveragedModel | None = None,
) -> dict[str, Any] | None:
    """Restore what :func:`save_checkpoint` wrote; None when there is no checkpoint."""
    folder = Path(folder) / STATE_DIR
    if not (folder / "state.json").is_file():
        return None
    meta = json.loads((folder / "state.json").read_text())
    tensors = load_file(str(folder / "state.safetensors"))
    head.load_state_dict(
        {k.removeprefix("model."): v for k, v in tensors.items() if k.startswith("model.")}
    )
    ema = {k.removeprefix("ema."): v for k, v in tensors.items() if k.startswith("ema.")}
    if averaged is None and ema:
        raise ConfigError(f"{folder} holds a weight average: resume with the run's --ema")
    if averaged is not None:
        if not ema:
            raise ConfigError(f"{folder} holds no weight average: resume without --ema")
        averaged.load_state_dict(ema)
    state: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        if key.startswith("optim."):
            _, pid, name = key.split(".", 2)
            state.setdefault(int(pid), {})[name] = value
    for pid, scalars in meta["optim_scalars"].items():
        state.setdefault(int(pid), {}).update(scalars)
    optimizer.load_state_dict({"state": state, "param_groups": meta["optim_groups"]})
    scheduler.load_state_dict(meta["scheduler"])
    return dict(meta["progress"])
