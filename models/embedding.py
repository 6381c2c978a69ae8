"""The encoder's main task: a sentence embedding, exactly as sentence-transformers makes it."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def mean_pool_normalize(last_hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Mean over real tokens, then L2 normalisation (all-MiniLM-L6-v2's pooling), in float32
    whatever the backbone's dtype: a bf16 sum over hundreds of tokens loses digits, and a
    vector rounded to bf16 after normalising is no longer of length 1."""
    hidden = last_hidden.float()
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    summed = (hidden * mask).sum(dim=1)
    counts = mask.sum(dim=1).clamp(min=1e-9)
    return F.normalize(summed / counts, p=2, dim=1)
