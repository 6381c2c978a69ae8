"""Per-layer multi-task update: GELU -> project (all tasks) -> LayerNorm per task -> scale -> add.

Liger-Kernel style: the plain torch reference lives here beside the fused Triton kernel and
its launcher, and tests compare the two.

Shapes (rows N = B*T):
    acc     (N, S_total) float32, updated in place
    z       (N, H)       hidden state of one layer (fp32 / fp16 / bf16)
    weight  (S_l, H)     concatenation of the active tasks' projections for this layer
    segments: for each active task, (weight row offset, acc column offset, k, scale)
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class Segment:
    """One active task on one layer: where its rows sit in ``weight`` and its columns in ``acc``."""

    weight_offset: int
    acc_offset: int
    size: int
    scale: float


def accumulate_torch(
    acc: torch.Tensor,
    z: torch.Tensor,
    weight: torch.Tensor,
    segments: tuple[Segment, ...],
    eps: float = 1e-5,
) -> None:
    """The eager reference: exact (erf) GELU, one matmul for every task, LayerNorm per slice."""
    projected = F.gelu(z.to(weight.dtype)) @ weight.t()
    for seg in segments:
        part = projected[:, seg.weight_offset : seg.weight_offset + seg.size].float()
        normed = F.layer_norm(part, (seg.size,), eps=eps)
        acc[:, seg.acc_offset : seg.acc_offset + seg.size].add_(normed, alpha=seg.scale)
