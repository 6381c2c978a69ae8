"""Turn head outputs into answers: labels and scores, entities with character offsets.

Token heads tag each word by its first sub-token. :func:`token_entities` decodes the words'
tag probabilities with a constrained Viterbi search (no ``I-X`` after ``O`` or ``B-Y`` /
``I-Y``, none at the start), so every entity is a well-formed B I* run: the argmax path can
break one name into two entities or start one with a stray ``I-``, which costs entity F1.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from heads.answers import ClassAnswer, Entity


def classification_answer(probs: torch.Tensor, labels: Sequence[str]) -> ClassAnswer:
    """Label, its probability and every class score for one text."""
    values = [float(p) for p in probs.tolist()]
    best = max(range(len(values)), key=values.__getitem__)
    return ClassAnswer(labels[best], values[best], dict(zip(labels, values, strict=True)))


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


@functools.lru_cache(maxsize=64)
def transitions(labels: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Log-space BIO constraints: (penalty[prev, cur], penalty_first[cur]), 0 where allowed
    and -inf where not (``I-X`` only continues X; no sentence starts inside an entity)."""
    n = len(labels)
    allowed = np.ones((n, n), dtype=bool)
    first = np.ones(n, dtype=bool)
    for cur, tag in enumerate(labels):
        prefix, _, kind = tag.partition("-")
        if prefix != "I":
            continue
        first[cur] = False
        for prev, before in enumerate(labels):
            allowed[prev, cur] = before in (f"B-{kind}", f"I-{kind}")
    return np.where(allowed, 0.0, -np.inf), np.where(first, 0.0, -np.inf)


def viterbi(probs: torch.Tensor, labels: Sequence[str]) -> list[int]:
    """The most probable label sequence (product of per-word probabilities) among those
    BIO allows; ``probs`` is (words, labels)."""
    return viterbi_many([probs], labels)[0]


def viterbi_many(sequences: Sequence[torch.Tensor], labels: Sequence[str]) -> list[list[int]]:
    """:func:`viterbi` of every (words, labels) table at once: one numpy step per word
    position over the whole batch instead of one per word of every text (a Python loop of
    tiny numpy calls cost ~200 us per text, 5 % of a bfloat16 pass with the shipped heads)."""
    if not sequences:
        return []
    penalty, first = transitions(tuple(labels))
    lengths = np.array([len(p) for p in sequences], dtype=np.int64)
    steps, n = int(lengths.max()), len(labels)
    if steps == 0:
        return [[] for _ in sequences]
    logp = np.zeros((len(sequences), steps, n))
    for row, probs in enumerate(sequences):
        logp[row, : len(probs)] = np.log(np.clip(probs.double().numpy(), 1e-30, None))
    score = logp[:, 0] + first
    back = np.zeros((len(sequences), steps, n), dtype=np.int64)
    for t in range(1, steps):
        cand = score[:, :, None] + penalty  # (batch, prev, cur)
        back[:, t] = cand.argmax(axis=1)
        best = cand.max(axis=1) + logp[:, t]  # the value at the argmax, without a gather
        score = np.where((t < lengths)[:, None], best, score)
    ends, back_lists = score.argmax(axis=1).tolist(), back.tolist()
    paths: list[list[int]] = []
    for row, length in enumerate(lengths.tolist()):
        if length == 0:
            paths.append([])
            continue
        path, table = [ends[row]], back_lists[row]
        for t in range(length - 1, 0, -1):
            path.append(table[t][path[-1]])
        paths.append(path[::-1])
    return paths


def first_subtokens(word_ids: Sequence[int | None]) -> list[int]:
    """Index of each word's first sub-token (the position its tag is read at)."""
    firsts, current = [], None
    for i, wid in enumerate(word_ids):
        if wid is not None and wid != current:
            firsts.append(i)
            current = wid
    return firsts


@dataclass(frozen=True)
class TokenTable:
    """One text's sub-token label probabilities with what maps them back to characters."""

    text: str
    offsets: Sequence[tuple[int, int]]
    word_ids: Sequence[int | None]
    probs: torch.Tensor  # (tokens, labels)


def token_entities(
    text: str,
    offsets: Sequence[tuple[int, int]],
    word_ids: Sequence[int | None],
    probs: torch.Tensor,
    labels: Sequence[str],
    constrained: bool = True,
) -> list[Entity]:
    """Entities of one text from its sub-tokens' label probabilities (tokens, labels).

    Each word is read at its first sub-token (as the head was trained); with
    ``constrained`` the words' tags are the BIO-valid Viterbi path, else each word's argmax.
    """
    return token_entities_many([TokenTable(text, offsets, word_ids, probs)], labels, constrained)[0]


def token_entities_many(
    tables: Sequence[TokenTable], labels: Sequence[str], constrained: bool = True
) -> list[list[Entity]]:
    """:func:`token_entities` of many texts, their Viterbi searches run as one batch."""
    firsts = [first_subtokens(t.word_ids) if len(t.probs) else [] for t in tables]
    paths: list[list[int]] = [[] for _ in tables]
    if constrained:
        live = [i for i, f in enumerate(firsts) if f]
        found = viterbi_many([tables[i].probs[firsts[i]] for i in live], labels)
        for i, path in zip(live, found, strict=True):
            paths[i] = path
    return [_entities(t, labels, f, p) for t, f, p in zip(tables, firsts, paths, strict=True)]


def _entities(
    table: TokenTable, labels: Sequence[str], firsts: list[int], path: list[int]
) -> list[Entity]:
    if len(table.probs) == 0:
        return []
    best = table.probs.argmax(dim=-1).tolist()
    for i, tag in zip(firsts[: len(path)], path, strict=True):
        best[i] = tag
    scores = table.probs.gather(1, torch.tensor(best)[:, None]).squeeze(1).tolist()
    tags = [labels[i] for i in best]
    words = words_from_tokens(table.text, table.offsets, table.word_ids, tags, scores)
    return decode_entities(table.text, words)


def decode_entities(text: str, words: Sequence[Word]) -> list[Entity]:
    """BIO decoding over words; an I- that does not continue its type starts an entity."""
    entities: list[Entity] = []
    label: str | None = None
    start = end = 0
    word_scores: list[float] = []

    def close() -> None:
        if label is not None:
            score = sum(word_scores) / len(word_scores)
            entities.append(Entity(text[start:end], label, start, end, score))

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
