"""Analytic FLOPs of a backbone pass and of the heads: the floor an overhead is compared to.

Counted: every matmul (2 FLOPs per multiply-add) and attention (scores and values, T^2 per
sequence); not counted: elementwise work (GELU, LayerNorm, softmax), which is what a fused
kernel removes. Written out by hand because torch's flop counter misses CPU attention
(fused scaled-dot-product and the MultiheadAttention fast path) in both the backbone and
the heads.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from torch import nn

from heads.modules import SequenceClassificationHead, TokenClassificationHead
from heads.registry import HeadSet
from models.backbone import Backbone


@dataclass(frozen=True)
class EncoderShape:
    """The sizes that set an encoder's compute."""

    hidden: int
    intermediate: int
    layers: int

    @classmethod
    def of(cls, backbone: Backbone) -> EncoderShape:
        config = backbone.model.config
        ffn = getattr(config, "intermediate_size", None) or config.encoder_ffn_dim
        return cls(backbone.info.hidden_size, int(ffn), backbone.info.num_layers)


def transformer_layer(tokens: int, length: int, hidden: int, ffn: int) -> int:
    """One encoder layer over ``tokens`` = batch x ``length``: QKV+out, FFN, attention."""
    linear = 2 * tokens * (4 * hidden * hidden + 2 * hidden * ffn)
    attention = 2 * 2 * tokens * length * hidden
    return linear + attention


def backbone_flops(shape: EncoderShape, batch: int, length: int, layers: int | None = None) -> int:
    """The encoder pass, all layers or the first ``layers``."""
    n = shape.layers if layers is None else layers
    return n * transformer_layer(batch * length, length, shape.hidden, shape.intermediate)


def _encoder_layer(module: nn.Module) -> bool:
    """Whether a head module runs a full encoder layer (attention and feed-forward): token
    heads and ``block="encoder"`` sequence heads; else one self-attention layer."""
    return isinstance(module, TokenClassificationHead) or (
        isinstance(module, SequenceClassificationHead) and module.feed_forward is not None
    )


def heads_flops(
    heads: HeadSet, names: Iterable[str], hidden: int, batch: int, length: int
) -> dict[str, int]:
    """Per task: accumulator projections (active hidden states only) + the head module."""
    tokens = batch * length
    out: dict[str, int] = {}
    for name in names:
        manifest = heads.heads[name].manifest
        k = manifest.k
        states = int((heads.heads[name].projection().layer_weights != 0).sum())
        accumulate = states * 2 * tokens * hidden * k
        if _encoder_layer(heads.heads[name].head):
            module = transformer_layer(tokens, length, k, manifest.ff_dim)
        else:  # one self-attention layer (in/out projections + attention), pool, linear
            module = 2 * tokens * 4 * k * k + 2 * 2 * tokens * length * k
        out[name] = accumulate + module + 2 * tokens * k * len(manifest.labels)
    return out
