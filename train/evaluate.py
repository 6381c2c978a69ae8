"""Predictions for evaluation, two ways that compute the same thing.

- :func:`predict_engine` runs texts through ``engine.core.Engine`` (tokenise, windows,
  streaming accumulator, head, postprocess): what ``sidetask eval`` and the shipped
  heads' recorded metrics use, so the numbers are what users get.
- :func:`predict_cached` does the engine's computation on cached states (per-window
  pooled sums added over windows; token probabilities from the window owning each token,
  words tagged by their first sub-token, BIO decoding): fast dev metrics while training.

What a prediction is, and how it is scored, is the head kind's (``train/kinds/``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from heads.task_head import TaskHead
from train.batches import Batch
from train.data import Example
from train.features import CachedSplit
from train.kinds import CacheView, train_kind
from train.kinds.sequence import text_logits


def head_logits(head: TaskHead, batch: Batch) -> torch.Tensor:
    """Per-text kinds: (texts, labels) pooled over all windows of a text; token: (W, T, labels)."""
    return train_kind(head.kind).logits(head, batch)


def score(
    head: TaskHead, examples: Sequence[Example], predictions: Sequence[Any]
) -> dict[str, Any]:
    """Metrics of predictions (label indices, label index lists, or entity lists)."""
    return train_kind(head.kind).score(head, examples, predictions)


def sequence_logits(
    head: TaskHead, split: CachedSplit, max_tokens: int = 16384, device: torch.device | str = "cpu"
) -> torch.Tensor:
    """(texts, labels) logits of a per-text head from cached states (temperature applied)."""
    return text_logits(head, split, max_tokens, device)


def predict_cached(
    head: TaskHead,
    split: CachedSplit,
    examples: Sequence[Example],
    tokenizer: Any,
    max_length: int,
    overlap: int,
    max_tokens: int = 16384,
    device: torch.device | str = "cpu",
    constrained: bool = True,
) -> list[Any]:
    """Engine-equivalent predictions from cached states, one per text (see the kind's).

    ``constrained`` (as the engine does): token heads decode with the BIO-constrained
    Viterbi search (:func:`heads.postprocess.token_entities`); False: each word's argmax.
    """
    view = CacheView(tokenizer, max_length, overlap, max_tokens, device)
    return train_kind(head.kind).predict_cached(head, split, examples, view, constrained)


def predict_engine(
    engine: Any, head_name: str, examples: Sequence[Example], labels: Sequence[str], chunk: int = 64
) -> list[Any]:
    """Predictions through the server's engine, one per text, as the kind's :func:`score`
    takes them."""
    from tqdm import tqdm

    kind = train_kind(engine.heads.heads[head_name].kind)
    out: list[Any] = []
    texts = [e.text for e in examples]
    for i in tqdm(range(0, len(texts), chunk), desc="eval", unit="batch", mininterval=5):
        result = engine.analyze(texts[i : i + chunk], [head_name])
        out += [kind.from_answer(answer[head_name], labels) for answer in result.results]
    return out
