"""What the head benchmarks run: the backbone under test, synthetic batches, random heads of
the method's real sizes, and one pass feeding them."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from heads.kinds import kind_for
from heads.manifest import HeadManifest
from heads.registry import HeadSet
from heads.task_head import TaskHead, fingerprint_of
from models.accumulator import StreamingAccumulator
from models.backbone import Backbone, BackboneInfo, ForwardResult

SEQUENCE_LABELS = ["negative", "positive"]
NER_LABELS = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-ORG", "I-ORG", "B-MISC", "I-MISC"]


def synthetic_batch(
    backbone: Backbone, batch: int, length: int, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Full-length windows of random ordinary tokens between the model's special tokens."""
    from models.windows import special_ids

    tok = backbone.tokenizer
    prefix, suffix = special_ids(tok)
    low = min(1000, max(len(tok) // 4, 1))
    high = min(len(tok), int(backbone.model.get_input_embeddings().weight.shape[0]))
    gen = torch.Generator().manual_seed(seed)
    body = length - len(prefix) - len(suffix)
    ids = torch.randint(low, high, (batch, body), generator=gen)
    ids = torch.cat([torch.tensor([prefix] * batch, dtype=torch.long).view(batch, -1), ids], 1)
    ids = torch.cat([ids, torch.tensor([suffix] * batch, dtype=torch.long).view(batch, -1)], 1)
    mask = torch.ones_like(ids)
    return ids.to(backbone.device), mask.to(backbone.device)


def bench_head(
    info: BackboneInfo,
    name: str,
    kind: str,
    k: int,
    seed: int,
    layer_logits: Sequence[float] | None = None,
    cutoff: float = 0.0,
    alpha: float = 64.0,
) -> TaskHead:
    """A random head with the method's real sizes (4 attention heads, NER ff 2048)."""
    torch.manual_seed(seed)
    logits = (
        list(layer_logits)
        if layer_logits is not None
        else torch.randn(info.num_states).mul(0.01).tolist()
    )
    manifest = HeadManifest(
        name=name,
        kind=kind,
        labels=SEQUENCE_LABELS if kind_for(kind).per_text else NER_LABELS,
        k=k,
        alpha=alpha,
        cutoff=cutoff,
        layer_logits=logits,
        max_positions=max(info.max_length, 512) + 2,
        num_attention_heads=4,
        ff_dim=2048,
        backbone=fingerprint_of(info),
    )
    return TaskHead(manifest).eval()


def bench_k(kind: str, k: int = 64, ner_k: int = 128) -> int:
    """The method's projection size for a kind: 64 for per-text heads, 128 for token heads."""
    return k if kind_for(kind).per_text else ner_k


def head_kind(index: int) -> str:
    """Mixed kinds like sentiment, cola, ner: every third head is a token (NER-like) head."""
    return "token" if index % 3 == 2 else "sequence"


def bench_heads(
    backbone: Backbone,
    n: int,
    k: int = 64,
    ner_k: int = 128,
    layer_logits: Sequence[float] | None = None,
    cutoff: float = 0.0,
    head_dtype: torch.dtype | None = None,
) -> HeadSet:
    """``n`` random heads, kinds mixed (k=64 sequence, k=128 token), on the backbone's device.

    ``head_dtype`` casts the head layers and the accumulator projections (layer weights stay
    float32), as the server's --head-dtype does.
    """
    info = backbone.info
    heads: dict[str, TaskHead] = {}
    for i in range(n):
        kind = head_kind(i)
        head = bench_head(
            info, f"task{i:02d}", kind, bench_k(kind, k, ner_k), i, layer_logits, cutoff
        )
        heads[head.name] = head.to(backbone.device)
        if head_dtype is not None:
            head.head.to(head_dtype)
    return HeadSet(
        heads=heads,
        device=backbone.device,
        dtype=head_dtype or backbone.dtype,
    )


def run_tasks(
    backbone: Backbone,
    heads: HeadSet,
    names: Sequence[str],
    ids: torch.Tensor,
    mask: torch.Tensor,
    main: bool = True,
    kernel: str = "auto",
    head_modules: bool = True,
) -> ForwardResult:
    """One backbone pass feeding every named head: accumulator, then each head's logits.

    ``head_modules=False`` stops at the mixed features F_t, to split the cost in two.
    """
    plan = heads.plan_for(names)
    acc = StreamingAccumulator(plan, ids.shape[0], ids.shape[1], backbone.device, kernel)
    out = backbone.forward(ids, mask, acc, plan.last_layer, main)
    with torch.inference_mode():
        features = acc.features()
        for name in names if head_modules else ():
            head = heads.heads[name]
            head.head(features[name].to(head.layers_dtype), mask)
    return out
