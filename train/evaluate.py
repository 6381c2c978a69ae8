"""Predictions for evaluation, two ways that compute the same thing.

- :func:`predict_engine` runs texts through ``engine.core.Engine`` (tokenise, windows,
  streaming accumulator, head, postprocess): what ``sidetask eval`` and the shipped
  heads' recorded metrics use, so the numbers are what users get.
- :func:`predict_cached` does the engine's computation on cached states (per-window
  pooled sums added over windows; token probabilities from the window owning each token,
  words tagged by their first sub-token, BIO decoding): fast dev metrics while training.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from heads.answers import ClassAnswer
from heads.postprocess import token_entities
from heads.task_head import TaskHead
from models.windows import encode_texts, make_windows
from train.batches import Batch, load_batch, plan, windows_by_text
from train.data import Example, TextExample, TokenExample, label_index
from train.features import IGNORE, CachedSplit, with_case_ids
from train.metrics import classification_metrics, entities_to_tags, ner_metrics


def head_logits(head: TaskHead, batch: Batch) -> torch.Tensor:
    """Sequence: (texts, labels) pooled over all windows of a text; token: (W, T, labels)."""
    features = head.mixer(batch.activated)
    if head.kind == "sequence":
        sums, counts = head.head.pooled_sums(features, batch.mask)  # type: ignore[union-attr,operator]
        total, count = head.head.combine_windows(sums, counts, batch.group, batch.num_texts)  # type: ignore[union-attr,operator]
        return head.head.classify(total, count)  # type: ignore[union-attr,operator]
    # the head itself refuses missing (or unexpected) case ids with a clear error
    return head.head(features, batch.mask, batch.case_ids)


def score(
    head: TaskHead, examples: Sequence[Example], predictions: Sequence[Any]
) -> dict[str, Any]:
    """Metrics of predictions (label indices, or entity lists) against the examples."""
    if head.kind == "sequence":
        truth = [label_index(head.labels, e.label) for e in examples if isinstance(e, TextExample)]
        return classification_metrics(truth, list(predictions), head.labels)
    tokens = [e for e in examples if isinstance(e, TokenExample)]
    pred_tags = [
        entities_to_tags(e.tokens, ents) for e, ents in zip(tokens, predictions, strict=True)
    ]
    return ner_metrics([e.tags for e in tokens], pred_tags)


@torch.no_grad()
def sequence_logits(
    head: TaskHead, split: CachedSplit, max_tokens: int = 16384, device: torch.device | str = "cpu"
) -> torch.Tensor:
    """(texts, labels) logits of a sequence head from cached states (temperature applied)."""
    head.eval()
    groups = windows_by_text(split)
    out = torch.zeros(split.num_examples, len(head.labels))
    for units in plan(split, "sequence", max_tokens, shuffle=False):
        batch = load_batch(split, "sequence", units, groups).to(torch.device(device))
        out[units] = head_logits(head, batch).float().cpu()
    return out


@torch.no_grad()
def token_logits(
    head: TaskHead, split: CachedSplit, max_tokens: int = 16384, device: torch.device | str = "cpu"
) -> tuple[torch.Tensor, torch.Tensor]:
    """(logits (n, labels), gold labels (n,)) of every labelled cached token of a token head
    (split with case ids when the head has case features): what its temperature is fitted on."""
    head.eval()
    logits, gold = [], []
    for units in plan(split, "token", max_tokens, shuffle=False):
        batch = load_batch(split, "token", units, None).to(torch.device(device))
        keep = batch.labels != IGNORE
        logits.append(head_logits(head, batch).float()[keep].cpu())
        gold.append(batch.labels[keep].cpu())
    return torch.cat(logits), torch.cat(gold)


@torch.no_grad()
def token_tables(
    head: TaskHead,
    split: CachedSplit,
    examples: Sequence[Example],
    tokenizer: Any,
    max_length: int,
    overlap: int,
    max_tokens: int = 16384,
    device: torch.device | str = "cpu",
) -> tuple[list[Any], list[torch.Tensor]]:
    """Per text: its encoding and the (tokens, labels) probabilities the engine would hold,
    each token read from the window that owns it."""
    head.eval()
    if head.case_features:
        split = with_case_ids(split, examples, tokenizer, max_length, overlap)
    encodings = encode_texts(tokenizer, [e.text for e in examples])
    windows = make_windows(encodings, tokenizer, max_length, overlap)
    if len(windows) != split.num_windows:
        raise ValueError("cached windows do not match these examples")
    tables = [torch.zeros(len(enc.ids), len(head.labels)) for enc in encodings]
    for units in plan(split, "token", max_tokens, shuffle=False):
        batch = load_batch(split, "token", units, None).to(torch.device(device))
        probs = torch.softmax(head_logits(head, batch).float(), -1).cpu()
        for row, wi in enumerate(units):
            windows[wi].write_owned(tables[windows[wi].text_index], probs[row])
    return encodings, tables


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
    """Engine-equivalent predictions from cached states (label index or entity list per text).

    ``constrained`` (as the engine does): token heads decode with the BIO-constrained
    Viterbi search (:func:`heads.postprocess.token_entities`); False: each word's argmax.
    """
    if head.kind == "sequence":
        return sequence_logits(head, split, max_tokens, device).argmax(-1).tolist()
    encodings, tables = token_tables(
        head, split, examples, tokenizer, max_length, overlap, max_tokens, device
    )
    return [
        token_entities(e.text, enc.offsets, enc.word_ids, table, head.labels, constrained)
        for e, enc, table in zip(examples, encodings, tables, strict=True)
    ]


def predict_engine(
    engine: Any, head_name: str, examples: Sequence[Example], labels: Sequence[str], chunk: int = 64
) -> list[Any]:
    """Predictions through the server's engine (label index or entity list per text)."""
    from tqdm import tqdm

    out: list[Any] = []
    texts = [e.text for e in examples]
    for i in tqdm(range(0, len(texts), chunk), desc="eval", unit="batch", mininterval=5):
        result = engine.analyze(texts[i : i + chunk], [head_name])
        for answer in result.results:
            value = answer[head_name]
            out.append(list(labels).index(value.label) if isinstance(value, ClassAnswer) else value)
    return out
