"""The stacked path: ask for every hidden state, stack them, mix afterwards.

This is how the original research code works (memory L*B*T*H). It is the oracle the
streaming accumulator is tested against and the baseline the benchmarks measure.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F

from models.accumulator import TaskProjection
from models.backbone import Backbone


def stacked_features(
    hidden_states: Sequence[torch.Tensor], tasks: Sequence[TaskProjection], eps: float = 1e-5
) -> dict[str, torch.Tensor]:
    """F_t = sum_i w_{t,i} LayerNorm(GELU(Z_i) W_{t,i}^T) computed from all states at once."""
    stacked = torch.stack([h.float() for h in hidden_states], 0)  # (L+1, B, T, H)
    activated = F.gelu(stacked)
    out: dict[str, torch.Tensor] = {}
    for task in tasks:
        proj = torch.einsum("lbth,lkh->lbtk", activated, task.projection.float())
        normed = F.layer_norm(proj, (task.k,), eps=eps)
        mixed = torch.einsum("l,lbtk->btk", task.layer_weights.float(), normed)
        if task.positions is not None:
            mixed = mixed + task.positions[: mixed.shape[1]].float()
        out[task.name] = mixed
    return out


def all_hidden_states(
    backbone: Backbone, input_ids: torch.Tensor, attention_mask: torch.Tensor
) -> tuple[torch.Tensor, ...]:
    """Every hidden state Z_0..Z_L of the encoder, the way the research code asks for them."""
    model: Any = backbone.model
    with torch.inference_mode():
        if backbone.is_encoder_decoder:
            encoder = model.get_encoder()
            out = encoder(
                input_ids=input_ids, attention_mask=attention_mask, output_hidden_states=True
            )
        else:
            out = model(
                input_ids=input_ids, attention_mask=attention_mask, output_hidden_states=True
            )
    return tuple(out.hidden_states)


def reference_features(
    backbone: Backbone,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    tasks: Sequence[TaskProjection],
) -> dict[str, torch.Tensor]:
    """Stacked-path features for a batch: the oracle for the streaming path."""
    return stacked_features(all_hidden_states(backbone, input_ids, attention_mask), tasks)
