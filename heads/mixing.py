"""Trainable layer mixing: per-layer projection, LayerNorm, softmax-weighted sum.

Training works on all hidden states at once (they are cached, the backbone is frozen);
inference exports the same parameters as a :class:`TaskProjection` for the streaming
accumulator. ``mode`` gives the baselines: ``last`` (last layer only) and ``uniform``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from models.accumulator import TaskProjection, mixing_weights


class LayerMixer(nn.Module):
    """W_{t,i} (H -> k) for every hidden state, layer logits p, optional positions."""

    def __init__(
        self,
        num_states: int,
        hidden_size: int,
        k: int,
        alpha: float = 64.0,
        cutoff: float = 0.0,
        mode: str = "adaptive",
        positions: bool = False,
        max_positions: int = 512,
    ) -> None:
        super().__init__()
        if mode not in {"adaptive", "last", "uniform"}:
            raise ValueError(f"unknown mixing mode {mode!r}")
        self.k, self.alpha, self.cutoff, self.mode = k, alpha, cutoff, mode
        self.projection = nn.Parameter(torch.empty(num_states, k, hidden_size))
        for i in range(num_states):
            nn.init.xavier_uniform_(self.projection.data[i])
        self.layer_logits = nn.Parameter(torch.zeros(num_states), requires_grad=mode == "adaptive")
        self.positions = nn.Embedding(max_positions, k) if positions else None
        if self.positions is not None:
            nn.init.normal_(self.positions.weight, std=0.02)

    @property
    def num_states(self) -> int:
        return int(self.projection.shape[0])

    def layer_weights(self) -> torch.Tensor:
        """w_t: the layer distribution actually used (baselines are fixed)."""
        if self.mode == "last":
            w = torch.zeros(self.num_states, device=self.projection.device)
            w[-1] = 1.0
            return w
        if self.mode == "uniform":
            return torch.full(
                (self.num_states,), 1.0 / self.num_states, device=self.projection.device
            )
        return mixing_weights(self.layer_logits, self.alpha, self.cutoff)

    def entropy(self) -> torch.Tensor:
        """H(w_t), the regulariser that pushes the distribution away from uniform."""
        w = torch.softmax(self.alpha * self.layer_logits, dim=-1)
        return -(w * torch.log(w.clamp_min(1e-12))).sum()

    def forward(self, activated: torch.Tensor) -> torch.Tensor:
        """Mix GELU'd hidden states (B, L+1, T, H) into F (B, T, k).

        The caller applies GELU once (it can be cached with the states).
        """
        w = self.layer_weights()
        active = torch.nonzero(w).flatten().tolist()
        out = None
        for i in active:
            f = F.layer_norm(activated[:, i].float() @ self.projection[i].t(), (self.k,))
            out = w[i] * f if out is None else out + w[i] * f
        assert out is not None
        if self.positions is not None:
            out = out + self.positions.weight[: out.shape[1]]
        return out

    def export(self, name: str) -> TaskProjection:
        """Detached parameters for the streaming accumulator."""
        with torch.no_grad():
            return TaskProjection(
                name=name,
                projection=self.projection.detach().clone(),
                layer_weights=self.layer_weights().detach().clone(),
                positions=None
                if self.positions is None
                else self.positions.weight.detach().clone(),
            )
