"""A padding-free encoder pass for BERT-family layers, with the layer taps kept.

A micro-batch of windows of different lengths is padded to its longest row, and the padded
pass spends its linear and feed-forward FLOPs on pad tokens too. Here the real tokens are
packed into one ``(tokens, hidden)`` matrix (the "effective transformer" /
FasterTransformer remove-padding idea): every linear layer, LayerNorm and the feed-forward
block run on real tokens only, and attention runs per run of equal-length rows (rows sorted
by length, so one dense ``scaled_dot_product_attention`` call covers all rows of one length,
with no mask). On CPU with torch 2.13 that beats both the padded, masked attention and the
jagged nested-tensor SDPA, which falls back to a slow math path there
(benchmarks/results/padding_cpu.json, docs/benchmarks.md#padding).

The taps see what the padded pass gives them: Z_0 is the embedding output as is, Z_1..Z_L
are scattered back to ``(batch, tokens, hidden)`` with zeros at pad positions (the padded
pass has values there that every consumer masks out). A consumer that can take packed rows
(:class:`PackedConsumer`, the streaming accumulator) is told the packing once and then gets
every Z_i as ``(tokens, hidden)``: no scatter per layer, and no work of its own on pads.

Only the layer structure of BERT, RoBERTa, XLM-R, ELECTRA and the like (``attention.self``
query/key/value, ``attention.output``, ``intermediate``, ``output``) with absolute positions
is supported; :func:`supports_unpadded` says whether a model has it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import torch
import torch.nn.functional as F
from torch import nn

Consumer = Callable[[int, torch.Tensor], None]


@runtime_checkable
class PackedConsumer(Protocol):
    """A layer consumer that can take the real tokens' rows only."""

    def __call__(self, index: int, hidden: torch.Tensor) -> None: ...

    def use_packed_rows(self, rows: torch.Tensor) -> None:
        """From now on each Z_i is ``(len(rows), hidden)``: row r is flat position
        ``rows[r]`` of the ``(batch, length)`` grid; pad positions never arrive."""


_LAYER_PARTS = ("attention", "intermediate", "output")
_ATTENTION_PARTS = ("query", "key", "value")


def _config_supported(config: Any) -> bool:
    """An encoder with absolute positions (relative ones live inside attention)."""
    if config is None or getattr(config, "is_encoder_decoder", False):
        return False
    if getattr(config, "is_decoder", False) or getattr(config, "add_cross_attention", False):
        return False
    absolute = getattr(config, "position_embedding_type", "absolute") == "absolute"
    return absolute and not getattr(config, "chunk_size_feed_forward", 0)


def _layer_supported(layer: nn.Module) -> bool:
    """The BERT layer layout: attention.self (query/key/value), attention.output, FFN."""
    if not all(isinstance(getattr(layer, p, None), nn.Module) for p in _LAYER_PARTS):
        return False
    own = getattr(layer.attention, "self", None)
    if own is None or not isinstance(getattr(layer.attention, "output", None), nn.Module):
        return False
    linears = all(isinstance(getattr(own, p, None), nn.Linear) for p in _ATTENTION_PARTS)
    return linears and hasattr(own, "num_attention_heads") and hasattr(own, "attention_head_size")


def supports_unpadded(model: Any, layers: nn.ModuleList) -> bool:
    """True for a BERT-family encoder this module can run without padding."""
    if not _config_supported(getattr(model, "config", None)):
        return False
    if not isinstance(getattr(model, "embeddings", None), nn.Module):
        return False
    if getattr(model, "embeddings_project", None) is not None:
        return False  # ELECTRA with a narrower embedding: a projection this pass would skip
    return all(_layer_supported(layer) for layer in layers)


@dataclass(frozen=True)
class Packing:
    """Where the real tokens of a padded ``(batch, length)`` micro-batch go.

    ``index``: the flat ``batch * length`` position of every packed token, rows longest
    first (stable), each row's tokens in order; ``runs``: ``(first token, rows, length)``
    for each run of rows of one length in that order.
    """

    batch: int
    length: int
    index: torch.Tensor
    runs: tuple[tuple[int, int, int], ...]

    @property
    def tokens(self) -> int:
        return int(self.index.numel())


def pack(attention_mask: torch.Tensor) -> Packing:
    """The packing of a 0/1 ``(batch, length)`` mask (any padding side)."""
    keep = attention_mask.bool()
    batch, length = keep.shape
    lengths = keep.sum(dim=1)
    order = torch.sort(lengths, descending=True, stable=True).indices
    flat = order[:, None] * length + torch.arange(length, device=keep.device)
    index = flat[keep[order]]
    runs: list[tuple[int, int, int]] = []
    start = 0
    for n in lengths[order].tolist():
        if runs and runs[-1][2] == n:
            first, rows, _ = runs[-1]
            runs[-1] = (first, rows + 1, n)
        else:
            runs.append((start, 1, n))
        start += n
    return Packing(batch, length, index, tuple(r for r in runs if r[2] > 0))


def unpack(packed: torch.Tensor, packing: Packing) -> torch.Tensor:
    """``(tokens, hidden)`` back to ``(batch, length, hidden)``, zeros at pad positions."""
    hidden = packed.shape[-1]
    out = packed.new_zeros(packing.batch * packing.length, hidden)
    out.index_copy_(0, packing.index, packed)
    return out.view(packing.batch, packing.length, hidden)


_FUSED = "_sidetask_qkv"  # attribute of a layer's attention.self: (weight, bias) of Q|K|V


def fuse_qkv(layers: nn.ModuleList) -> None:
    """Make each layer's query, key and value parameters views of one (3 * hidden, hidden)
    weight and bias, so the packed pass projects Q, K and V in one matmul (no extra memory;
    the modules themselves are unchanged for every other caller)."""
    with torch.no_grad():
        for layer in layers:
            attention: Any = layer.attention
            own = attention.self
            if _fused(own) is not None:
                continue
            parts = [getattr(own, p) for p in _ATTENTION_PARTS]
            if any(p.bias is None for p in parts):
                continue
            weight = torch.cat([p.weight for p in parts])
            bias = torch.cat([p.bias for p in parts])
            size = parts[0].weight.shape[0]
            for i, p in enumerate(parts):
                p.weight.data = weight[i * size : (i + 1) * size]
                p.bias.data = bias[i * size : (i + 1) * size]
            setattr(own, _FUSED, (weight, bias))


def _fused(own: Any) -> tuple[torch.Tensor, torch.Tensor] | None:
    """The fused Q|K|V weight and bias, if the parameters are still views of them (a later
    ``.to()`` or weight load replaces them: then the three projections run apart)."""
    fused = getattr(own, _FUSED, None)
    if fused is None:
        return None
    weight, bias = fused
    same = own.query.weight.data_ptr() == weight.data_ptr()
    same = same and own.value.bias.data_ptr() == bias[2 * bias.shape[0] // 3 :].data_ptr()
    return fused if same else None


def packed_attention(
    own: Any, x: torch.Tensor, runs: Sequence[tuple[int, int, int]]
) -> torch.Tensor:
    """Self-attention of packed tokens: one unmasked SDPA call per run of equal-length rows.

    Few torch calls per run on purpose: each is a return to Python, which must take the GIL
    back from the server's event loop (docs/server.md#saturation)."""
    heads, size = int(own.num_attention_heads), int(own.attention_head_size)
    scale = getattr(own, "scaling", size**-0.5)
    fused = _fused(own)
    if fused is not None:
        qkv = F.linear(x, *fused)
    else:
        qkv = torch.cat([own.query(x), own.key(x), own.value(x)], dim=-1)
    context = x.new_empty(x.shape[0], heads * size)
    for first, rows, n in runs:
        stop = first + rows * n
        q, k, v = qkv[first:stop].view(rows, n, 3, heads, size).permute(2, 0, 3, 1, 4).unbind(0)
        out = F.scaled_dot_product_attention(q, k, v, scale=scale)
        context[first:stop] = out.transpose(1, 2).reshape(rows * n, heads * size)
    return context


def packed_layer(layer: Any, x: torch.Tensor, runs: Sequence[tuple[int, int, int]]) -> torch.Tensor:
    """One BERT-family layer (post-norm: attention, add & norm, feed-forward, add & norm)."""
    attended = layer.attention.output(packed_attention(layer.attention.self, x, runs), x)
    return layer.output(layer.intermediate(attended), attended)


def unpadded_encode(
    model: Any,
    layers: nn.ModuleList,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    consumer: Consumer | None,
    last_layer: int | None,
) -> tuple[int, torch.Tensor | None]:
    """The encoder pass without pad tokens: ``(layers run, last hidden state)``.

    ``consumer`` gets Z_0..Z_L as the padded pass's taps do; after ``last_layer`` the pass
    stops and the last hidden state is None (early exit). Call under inference mode.
    """
    embedded = model.embeddings(input_ids=input_ids)
    packing = pack(attention_mask)
    x = embedded.reshape(packing.batch * packing.length, -1).index_select(0, packing.index)
    packed = consumer if isinstance(consumer, PackedConsumer) else None
    if packed is not None:
        packed.use_packed_rows(packing.index)
        packed(0, x)
    elif consumer is not None:
        consumer(0, embedded)
    if last_layer == 0:
        return 0, None
    hidden: torch.Tensor | None = None
    for i, layer in enumerate(layers, start=1):
        x = packed_layer(layer, x, packing.runs)
        hidden = None  # unpacked only when someone reads it
        if packed is not None:
            packed(i, x)
        elif consumer is not None:
            hidden = unpack(x, packing)
            consumer(i, hidden)
        if last_layer is not None and i >= last_layer:
            return i, None
    return len(layers), hidden if hidden is not None else unpack(x, packing)
