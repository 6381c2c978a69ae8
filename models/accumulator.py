"""The streaming multi-task accumulator.

For all active tasks at once, each hidden state Z_i is read once: GELU, one matmul against
the concatenated projections, LayerNorm per task slice, scale by w_{t,i}, add into one
(B, T, sum k) buffer. Layers whose weight is zero for every task are skipped outright, and
:attr:`AccumulatorPlan.last_layer` tells the backbone where it may stop.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

from models.kernels.accumulate import Segment, accumulate_torch, interpreting

KERNEL_CHOICES = ("auto", "torch", "triton")


@dataclass(frozen=True)
class TaskProjection:
    """What one head contributes to the shared accumulator (inference only)."""

    name: str
    projection: torch.Tensor  # (L + 1, k, H)
    layer_weights: torch.Tensor  # (L + 1,), normalised, exact zeros where cut off
    positions: torch.Tensor | None = None  # (P, k) learned positional embeddings

    @property
    def k(self) -> int:
        return int(self.projection.shape[1])


def mixing_weights(logits: torch.Tensor, alpha: float, cutoff: float) -> torch.Tensor:
    """softmax(alpha * p); entries below ``cutoff`` set to zero; renormalised.

    Differentiable (the mask is a constant), so training and inference share it.
    The largest weight always survives, whatever the cutoff.
    """
    w = torch.softmax(alpha * logits, dim=-1)
    if cutoff > 0:
        keep = (w >= cutoff) | (w == w.max())
        w = torch.where(keep, w, torch.zeros_like(w))
        w = w / w.sum()
    return w


def resolve_kernel(kernel: str, device: torch.device) -> str:
    """Which path runs: ``torch`` or ``triton`` as asked; ``auto`` is Triton on CUDA.

    The server asks for a concrete path, settled at start-up by
    :func:`models.kernel_check.choose_kernel` (which checks the kernel on the device first);
    the choice comes from Settings only, never from the environment directly.
    """
    choice = kernel or "auto"
    if choice not in KERNEL_CHOICES:
        raise ValueError(f"kernel must be one of {KERNEL_CHOICES}, got {choice!r}")
    if choice == "auto":
        if device.type == "cuda":
            from models.kernels import triton_available

            return "triton" if triton_available() else "torch"
        return "torch"
    if choice == "triton" and device.type != "cuda" and not interpreting():
        raise ValueError("the triton kernel runs on CPU only under TRITON_INTERPRET=1")
    return choice


@dataclass
class _LayerPlan:
    weight: torch.Tensor  # (S_l, H)
    segments: tuple[Segment, ...]


@dataclass
class AccumulatorPlan:
    """Per-layer concatenated weights for a fixed set of tasks, built once per head set."""

    tasks: tuple[TaskProjection, ...]
    offsets: tuple[int, ...]
    total_k: int
    layers: dict[int, _LayerPlan] = field(default_factory=dict)

    @classmethod
    def build(
        cls,
        tasks: Sequence[TaskProjection],
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float32,
    ) -> AccumulatorPlan:
        if not tasks:
            raise ValueError("an accumulator needs at least one task")
        num_states = {int(t.projection.shape[0]) for t in tasks}
        hidden = {int(t.projection.shape[2]) for t in tasks}
        if len(num_states) != 1 or len(hidden) != 1:
            raise ValueError("all tasks must share the backbone's layer count and hidden size")
        offsets, total = [], 0
        for t in tasks:
            offsets.append(total)
            total += t.k
        plan = cls(tasks=tuple(tasks), offsets=tuple(offsets), total_k=total)
        for i in range(num_states.pop()):
            rows, segments, w_off = [], [], 0
            for t, a_off in zip(tasks, offsets, strict=True):
                scale = float(t.layer_weights[i])
                if scale == 0.0:
                    continue
                rows.append(t.projection[i])
                segments.append(Segment(w_off, a_off, t.k, scale))
                w_off += t.k
            if rows:
                weight = torch.cat(rows, 0).to(device=device, dtype=dtype).contiguous()
                plan.layers[i] = _LayerPlan(weight, tuple(segments))
        return plan

    @property
    def last_layer(self) -> int:
        """The last hidden state any task needs: the backbone may stop after it."""
        return max(self.layers)

    @property
    def active_layers(self) -> list[int]:
        return sorted(self.layers)


class StreamingAccumulator:
    """Consumes Z_i as the backbone produces them; holds one (B, T, sum k) float32 buffer.

    After :meth:`use_packed_rows` (the padding-free pass calls it) the buffer holds the real
    tokens only, and :meth:`features` scatters them back once, zeros at pad positions.
    """

    def __init__(
        self,
        plan: AccumulatorPlan,
        batch: int,
        seq_len: int,
        device: torch.device | str = "cpu",
        kernel: str = "auto",
    ) -> None:
        self.plan = plan
        self.device = torch.device(device)
        self.kernel = resolve_kernel(kernel, self.device)
        self.shape = (batch, seq_len)
        self.updated_layers: list[int] = []
        self.rows: torch.Tensor | None = None  # packed: flat grid position of each buffer row
        self._buffer: torch.Tensor | None = None

    @property
    def buffer(self) -> torch.Tensor:
        """(rows, sum k) float32: a row per grid position, or per packed row after
        :meth:`use_packed_rows`. Allocated at first use, so a packed pass never allocates the
        padded one."""
        if self._buffer is None:
            rows = self.shape[0] * self.shape[1] if self.rows is None else self.rows.numel()
            self._buffer = torch.zeros(rows, self.plan.total_k, device=self.device)
        return self._buffer

    def use_packed_rows(self, rows: torch.Tensor) -> None:
        """Z_i will arrive as the real tokens' rows only (models/unpadded.py)."""
        if self._buffer is not None:
            raise RuntimeError("the packing must be set before the first layer arrives")
        self.rows = rows

    def __call__(self, index: int, hidden: torch.Tensor) -> None:
        layer = self.plan.layers.get(index)
        if layer is None:
            return  # zero weight for every task: no matmul at all
        z = hidden.reshape(-1, hidden.shape[-1])
        if self.kernel == "triton":
            from models.kernels.accumulate import accumulate_triton

            accumulate_triton(self.buffer, z, layer.weight, layer.segments)
        else:
            accumulate_torch(self.buffer, z, layer.weight, layer.segments)
        self.updated_layers.append(index)

    def features(self) -> dict[str, torch.Tensor]:
        """F_t per task, (B, T, k) float32, positional embeddings added where the head has them."""
        batch, seq_len = self.shape
        grid = self.buffer
        if self.rows is not None:
            grid = grid.new_zeros(batch * seq_len, self.plan.total_k)
            grid.index_copy_(0, self.rows, self.buffer)
        full = grid.view(batch, seq_len, self.plan.total_k)
        out: dict[str, torch.Tensor] = {}
        for task, offset in zip(self.plan.tasks, self.plan.offsets, strict=True):
            f = full[..., offset : offset + task.k]
            if task.positions is not None:
                f = f + task.positions[:seq_len].to(f.device, f.dtype)
            out[task.name] = f
        return out
