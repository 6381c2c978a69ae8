"""The two head architectures of the method, on top of the mixed features F_t."""

from __future__ import annotations

import torch
from torch import nn


class SequenceClassificationHead(nn.Module):
    """One self-attention layer over F_t (padding masked), masked mean pool, linear."""

    def __init__(self, k: int, num_labels: int, num_heads: int = 4, dropout: float = 0.1) -> None:
        super().__init__()
        self.attention = nn.MultiheadAttention(k, num_heads, dropout=dropout, batch_first=True)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(k, num_labels)

    def pooled_sums(
        self, features: torch.Tensor, mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Per window: the sum of attended token features and the token count.

        Sums (not means) so that windows of one long text pool into one token-weighted mean.
        """
        pad = mask == 0
        attended, _ = self.attention(features, features, features, key_padding_mask=pad)
        keep = mask.unsqueeze(-1).to(attended.dtype)
        return (attended * keep).sum(dim=1), keep.sum(dim=1)

    def classify(self, sums: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.dropout(sums / counts.clamp_min(1.0)))

    def forward(self, features: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        sums, counts = self.pooled_sums(features, mask)
        return self.classify(sums, counts)


class TokenClassificationHead(nn.Module):
    """One pre-norm TransformerEncoder layer (feed-forward ``ff_dim``), then linear."""

    def __init__(
        self, k: int, num_labels: int, num_heads: int = 4, ff_dim: int = 2048, dropout: float = 0.1
    ) -> None:
        super().__init__()
        self.encoder = nn.TransformerEncoderLayer(
            k,
            num_heads,
            dim_feedforward=ff_dim,
            dropout=dropout,
            activation="gelu",
            batch_first=True,
            norm_first=True,
        )
        self.classifier = nn.Linear(k, num_labels)

    def forward(self, features: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        encoded = self.encoder(features, src_key_padding_mask=mask == 0)
        return self.classifier(encoded)
