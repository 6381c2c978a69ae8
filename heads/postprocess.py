"""Turn head outputs into answers: labels and scores, entities with character offsets."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch


def classification_answer(probs: torch.Tensor, labels: Sequence[str]) -> dict[str, object]:
    """Label, its probability and every class score for one text."""
    values = [float(p) for p in probs.tolist()]
    best = max(range(len(values)), key=values.__getitem__)
    return {
        "label": labels[best],
        "score": values[best],
        "scores": dict(zip(labels, values, strict=True)),
    }


@dataclass(frozen=True)
class Word:
    """A word of the original text: char span and the tag of its first sub-token."""

    start: int
    end: int
    tag: str
    score: float


def words_from_tokens(
    text: str,
    offsets: Sequence[tuple[int, int]],
    word_ids: Sequence[int | None],
    tags: Sequence[str],
    scores: Sequence[float],
) -> list[Word]:
    """Group sub-tokens into words; a word takes its first sub-token's tag.

    Spans are trimmed of surrounding whitespace, so they never start or end in a space
    whatever the tokenizer's offset convention (byte-level BPE includes the space).
    """
    words: list[Word] = []
    current: int | None = None
    start = end = 0
    tag, score = "O", 1.0
    for i, wid in enumerate(word_ids):
        if wid is None:
            continue
        a, b = offsets[i]
        if wid != current:
            if current is not None:
                words.append(_trimmed(text, start, end, tag, score))
            current, start, end, tag, score = wid, a, b, tags[i], scores[i]
        else:
            end = max(end, b)
    if current is not None:
        words.append(_trimmed(text, start, end, tag, score))
    return [w for w in words if w.end > w.start]


def _trimmed(text: str, start: int, end: int, tag: str, score: float) -> Word:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return Word(start, end, tag, score)


def decode_entities(text: str, words: Sequence[Word]) -> list[dict[str, object]]:
    """BIO decoding over words; an I- that does not continue its type starts an entity."""
    entities: list[dict[str, object]] = []
    label: str | None = None
    start = end = 0
    word_scores: list[float] = []

    def close() -> None:
        if label is not None:
            entities.append(
                {
                    "text": text[start:end],
                    "label": label,
                    "start": start,
                    "end": end,
                    "score": sum(word_scores) / len(word_scores),
                }
            )

    for w in words:
        prefix, _, kind = w.tag.partition("-")
        if prefix == "I" and label == kind:
            end = w.end
            word_scores.append(w.score)
            continue
        close()
        if prefix in {"B", "I"} and kind:
            label, start, end, word_scores = kind, w.start, w.end, [w.score]
        else:
            label, word_scores = None, []
    close()
    return entities
