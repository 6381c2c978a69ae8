"""What one training step minimises: the loss of a batch, per-file weights, case dropout."""

from __future__ import annotations

from dataclasses import replace

import torch

from heads.casing import LOWERED
from heads.task_head import TaskHead
from train.batches import Batch
from train.config import TrainConfig
from train.kinds import train_kind


def lower_case_some(batch: Batch, p: float, seed: int) -> Batch:
    """``batch`` with each window's case ids, with probability ``p``, replaced by those of its
    lower-cased text: a head with case features then also learns to tag lower-case input
    (user text, ASR) instead of relying on capitals alone. Seeded per step (resumable)."""
    return recase_some(batch, p, 0.0, seed)


def recase_some(batch: Batch, p_lower: float, p_upper: float, seed: int) -> Batch:
    """``batch`` with a share ``p_lower`` of its windows shown as if lower-cased and a
    further share ``p_upper`` as if upper-cased (needs ``batch.case_upper``): headlines and
    shouted text are ALL CAPS, chat and queries lower case, and a head that only ever saw
    news casing mistakes every capitalised word for a name. Seeded per step (resumable)."""
    if batch.case_ids is None or p_lower + p_upper <= 0:
        return batch
    if p_upper > 0 and batch.case_upper is None:
        raise ValueError("upper-case augmentation needs the split's upper-case ids")
    gen = torch.Generator().manual_seed(seed)
    u = torch.rand(batch.case_ids.shape[0], generator=gen)[:, None]
    lowered = torch.tensor(LOWERED, dtype=batch.case_ids.dtype)[batch.case_ids]
    case = torch.where(u < p_lower, lowered, batch.case_ids)
    if p_upper > 0 and batch.case_upper is not None:
        upper = (u >= p_lower) & (u < p_lower + p_upper)
        case = torch.where(upper, batch.case_upper, case)
    return replace(batch, case_ids=case)


def file_weights(cfg: TrainConfig) -> list[float]:
    """Loss weight per training file. Batches are capped by tokens, so a file of long texts
    (IMDB reviews) gets many more optimiser steps per example than one of short sentences
    (SST-2); a weight below 1 gives its steps a smaller say."""
    if cfg.train_weights is None:
        return [1.0] * len(cfg.train)
    return [float(w) for w in cfg.train_weights]


def batch_loss(
    head: TaskHead, batch: Batch, cfg: TrainConfig, class_weight: torch.Tensor | None = None
) -> torch.Tensor:
    """The kind's loss of the batch (``train/kinds/``) plus the entropy regulariser."""
    kind = train_kind(head.kind)
    loss = kind.loss(kind.logits(head, batch), batch, cfg.label_smoothing, class_weight)
    if cfg.entropy > 0 and head.mixer.mode == "adaptive":
        loss = loss + cfg.entropy * head.mixer.entropy()
    return loss
