"""The two head architectures of the method, on top of the mixed features F_t."""

from __future__ import annotations

import warnings

import torch
import torch.nn.functional as F
from torch import nn

from heads.casing import NUM_CASE_CLASSES

# The strided nested tensors of _encode_real_tokens are what nn.TransformerEncoder itself
# builds for its fast path; torch warns that their API is a prototype on every call.
warnings.filterwarnings("ignore", message="The PyTorch API of nested tensors is in prototype")

POOLINGS = ("mean", "max")
BLOCKS = ("attention", "encoder")


class SequenceClassificationHead(nn.Module):
    """One self-attention layer over F_t (padding masked), masked mean (or max) pool, linear.

    ``pooling="max"`` takes each feature's largest value over the tokens: a judgement that
    hinges on one spot of the text (a grammatical slip, for CoLA) is not averaged away.
    ``block="encoder"`` adds what the token head has around the attention: pre-norm
    LayerNorms and a GELU feed-forward of ``ff_dim``, so the features are transformed
    non-linearly per token before pooling (attention, mean and linear alone are close to a
    linear probe of F_t).
    """

    def __init__(
        self,
        k: int,
        num_labels: int,
        num_heads: int = 4,
        dropout: float = 0.1,
        pooling: str = "mean",
        block: str = "attention",
        ff_dim: int = 2048,
    ) -> None:
        super().__init__()
        if pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
        if block not in BLOCKS:
            raise ValueError(f"block must be one of {BLOCKS}, got {block!r}")
        self.pooling = pooling
        self.attention = nn.MultiheadAttention(k, num_heads, dropout=dropout, batch_first=True)
        self.feed_forward: nn.Module | None = None
        if block == "encoder":
            self.norm_attention = nn.LayerNorm(k)
            self.norm_feed_forward = nn.LayerNorm(k)
            self.feed_forward = nn.Sequential(
                nn.Linear(k, ff_dim),
                nn.GELU(),
                nn.Dropout(dropout),
                nn.Linear(ff_dim, k),
                nn.Dropout(dropout),
            )
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(k, num_labels)
        # Calibration (manifest ``temperature``): logits are divided by it; 1 while training.
        self.temperature = 1.0

    def pooled_sums(
        self, features: torch.Tensor, mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Per window: the pooled attended features and the token count.

        Mean pooling gives sums (not means), so that the windows of one long text combine
        (:meth:`combine`) into one token-weighted mean; max pooling gives the window's maxima.
        """
        attended = self._encode(features, mask)
        keep = mask.unsqueeze(-1).to(attended.dtype)
        if self.pooling == "max":
            lowest = torch.finfo(attended.dtype).min
            return attended.masked_fill(keep == 0, lowest).amax(dim=1), keep.sum(dim=1)
        return (attended * keep).sum(dim=1), keep.sum(dim=1)

    def combine(
        self, a: tuple[torch.Tensor, torch.Tensor], b: tuple[torch.Tensor, torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Two windows' :meth:`pooled_sums` of one text as if they were one window."""
        pooled = torch.maximum(a[0], b[0]) if self.pooling == "max" else a[0] + b[0]
        return pooled, a[1] + b[1]

    def combine_windows(
        self, pooled: torch.Tensor, counts: torch.Tensor, group: torch.Tensor, num_texts: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Every window's pooled features folded into its text's (``group``: text per window)."""
        count = counts.new_zeros(num_texts, 1).index_add_(0, group, counts)
        if self.pooling == "max":
            index = group[:, None].expand_as(pooled)
            total = pooled.new_zeros(num_texts, pooled.shape[1])
            total = total.scatter_reduce(0, index, pooled, "amax", include_self=False)
        else:
            total = pooled.new_zeros(num_texts, pooled.shape[1]).index_add_(0, group, pooled)
        return total, count

    def _encode(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """The block over F_t: attention alone, or a pre-norm encoder layer."""
        if self.feed_forward is None:
            return self._self_attention(x, mask)
        x = x + self.dropout(self._self_attention(self.norm_attention(x), mask))
        return x + self.feed_forward(self.norm_feed_forward(x))

    def _self_attention(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """``self.attention`` computed with scaled_dot_product_attention.

        Same parameters and result as nn.MultiheadAttention with a key padding mask, but
        the fused kernel: the module's own masked path is several times slower on CPU.
        """
        mha = self.attention
        batch, length, dim = x.shape
        heads = mha.num_heads
        q, k, v = F.linear(x, mha.in_proj_weight, mha.in_proj_bias).chunk(3, dim=-1)

        def split(t: torch.Tensor) -> torch.Tensor:
            return t.view(batch, length, heads, dim // heads).transpose(1, 2)

        allowed = (mask != 0)[:, None, None, :]  # (B, 1, 1, T): True = attend
        out = F.scaled_dot_product_attention(
            split(q),
            split(k),
            split(v),
            attn_mask=allowed,
            dropout_p=mha.dropout if self.training else 0.0,
        )
        out = out.transpose(1, 2).reshape(batch, length, dim)
        return mha.out_proj(out)

    def classify(self, sums: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
        pooled = sums if self.pooling == "max" else sums / counts.clamp_min(1.0)
        logits = self.classifier(self.dropout(pooled))
        return logits if self.temperature == 1.0 else logits / self.temperature

    def forward(self, features: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        sums, counts = self.pooled_sums(features, mask)
        return self.classify(sums, counts)


class TokenClassificationHead(nn.Module):
    """One pre-norm TransformerEncoder layer (feed-forward ``ff_dim``), then linear.

    With ``case_features`` a learned embedding of each token's casing class
    (``heads/casing.py``) is added to F_t before the encoder layer: the uncased backbone's
    states cannot see capitalisation. It starts at zero, so training starts from the plain head.
    """

    def __init__(
        self,
        k: int,
        num_labels: int,
        num_heads: int = 4,
        ff_dim: int = 2048,
        dropout: float = 0.1,
        case_features: bool = False,
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
        self.temperature = 1.0  # as the sequence head's: calibration, 1 while training
        self.case_embedding: nn.Embedding | None = None
        if case_features:
            self.case_embedding = nn.Embedding(NUM_CASE_CLASSES, k)
            nn.init.zeros_(self.case_embedding.weight)

    def forward(
        self, features: torch.Tensor, mask: torch.Tensor, case_ids: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Logits (B, T, labels); ``case_ids`` (B, T) is required iff the head has case features."""
        if self.case_embedding is not None:
            if case_ids is None:
                raise ValueError("this head has case features: pass case_ids")
            features = features + self.case_embedding(case_ids).to(features.dtype)
        elif case_ids is not None:
            raise ValueError("this head has no case features: case_ids given")
        encoded = self._encode(features, mask)
        logits = self.classifier(encoded)
        return logits if self.temperature == 1.0 else logits / self.temperature

    def _encode(self, features: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """The encoder layer; at inference over the real tokens only (pad positions come back
        as zeros: nobody reads them). The feed-forward block (k x ff_dim, the head's largest
        matmuls) then skips the pads of a padded micro-batch, as nn.TransformerEncoder's own
        nested-tensor fast path does (docs/benchmarks.md#padding). A batch without pads runs
        unmasked: the fast path's masked softmax costs as much as the rest of the layer."""
        keep = mask.bool()
        if self.training or torch.is_grad_enabled():
            return self.encoder(features, src_key_padding_mask=~keep)
        if bool(keep.all()):  # no pads: the unmasked fast path (the masked one is ~2x slower)
            return self.encoder(features)
        if not bool(keep[:, 0].all()):  # an empty row has no nested form
            return self.encoder(features, src_key_padding_mask=~keep)
        nested = torch._nested_tensor_from_mask(features, keep)  # checks: right padding only
        return self.encoder(nested).to_padded_tensor(0.0, features.shape)
