"""Per-layer multi-task accumulate: GELU -> project -> per-task LayerNorm -> scale -> add.

Liger-Kernel style: the plain torch reference lives here, the fused Triton kernel (a
module-level ``@triton.jit``) and its launcher in :mod:`models.kernels.triton_accumulate`,
and tests compare the two.

Shapes (rows N = B*T):
    acc     (N, S_total) float32, updated in place
    z       (N, H)       hidden state of one layer (fp32 / fp16 / bf16)
    weight  (S_l, H)     concatenation of the active tasks' projections for this layer
    segments: for each active task, (weight row offset, acc column offset, k, scale)

The Triton side is imported lazily, on the first :func:`accumulate_triton` call: importing
this module (the torch path, the CPU server) never imports triton.
"""

from __future__ import annotations

import os
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
    projected = F.gelu(z).to(weight.dtype) @ weight.t()
    for seg in segments:
        part = projected[:, seg.weight_offset : seg.weight_offset + seg.size].float()
        normed = F.layer_norm(part, (seg.size,), eps=eps)
        acc[:, seg.acc_offset : seg.acc_offset + seg.size].add_(normed, alpha=seg.scale)


def interpreting() -> bool:
    """True under TRITON_INTERPRET=1: the kernel then runs on CPU tensors via the interpreter
    (Triton reads the variable when the kernel module is imported: set it before that)."""
    return os.environ.get("TRITON_INTERPRET", "0").lower() in ("1", "true", "on", "yes")


def accumulate_triton(
    acc: torch.Tensor,
    z: torch.Tensor,
    weight: torch.Tensor,
    segments: tuple[Segment, ...],
    eps: float = 1e-5,
) -> None:
    """Same contract as :func:`accumulate_torch`, in one fused Triton launch for every task.

    Inputs are read through their strides (non-contiguous views work); ``acc`` must be float32
    and tasks must not share acc columns. Inference only: no autograd. CUDA tensors, or CPU
    ones when TRITON_INTERPRET=1 was set before the first call; anything else is a ValueError.
    """
    from models.kernels.triton_accumulate import accumulate_triton as fused

    fused(acc, z, weight, segments, eps)
