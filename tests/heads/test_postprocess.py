"""Answers users read: class scores, and entities whose offsets point into the original text."""

from __future__ import annotations

import itertools

import pytest
import torch

from heads.answers import ClassAnswer
from heads.postprocess import (
    TokenTable,
    Word,
    classification_answer,
    decode_entities,
    token_entities,
    token_entities_many,
    viterbi,
    viterbi_many,
    words_from_tokens,
)


def test_classification_answer_has_label_score_and_all_scores() -> None:
    out = classification_answer(torch.tensor([0.25, 0.75]), ["negative", "positive"])
    assert out == ClassAnswer("positive", 0.75, {"negative": 0.25, "positive": 0.75})


def test_bio_decoding_joins_continuations_and_splits_types() -> None:
    text = "Ada Lovelace met Bob in London Town"
    spans = [(0, 3), (4, 12), (13, 16), (17, 20), (21, 23), (24, 30), (31, 35)]
    tags = ["B-PER", "I-PER", "O", "B-PER", "O", "B-LOC", "I-LOC"]
    words = [Word(a, b, t, 0.9) for (a, b), t in zip(spans, tags, strict=True)]
    ents = decode_entities(text, words)
    assert [(e.text, e.label) for e in ents] == [
        ("Ada Lovelace", "PER"),
        ("Bob", "PER"),
        ("London Town", "LOC"),
    ]
    assert ents[0].start == 0 and ents[0].end == 12


def test_stray_inside_tag_starts_an_entity_and_type_change_splits() -> None:
    text = "Paris Berlin"
    words = [Word(0, 5, "I-LOC", 0.5), Word(6, 12, "I-ORG", 0.7)]
    ents = decode_entities(text, words)
    assert [(e.text, e.label) for e in ents] == [("Paris", "LOC"), ("Berlin", "ORG")]


def test_word_spans_are_trimmed_and_take_the_first_subtoken_tag() -> None:
    text = "  Grüße aus Köln  "
    offsets = [(0, 4), (4, 7), (7, 11), (11, 15), (15, 16)]
    word_ids = [0, 0, 1, 2, 2]
    tags = ["B-MISC", "O", "O", "B-LOC", "O"]
    words = words_from_tokens(text, offsets, word_ids, tags, [1.0] * 5)
    assert [text[w.start : w.end] for w in words] == ["Grüße", "aus", "Köln"]
    assert [w.tag for w in words] == ["B-MISC", "O", "B-LOC"]


@pytest.mark.parametrize("n", [0, 1])
def test_no_words_no_entities(n: int) -> None:
    assert decode_entities("x" * n, []) == []


LABELS = ["O", "B-LOC", "I-LOC", "B-ORG", "I-ORG", "B-PER", "I-PER"]


def table(rows: list[dict[str, float]]) -> torch.Tensor:
    """Per word, the given label probabilities, the rest of the mass spread evenly."""
    out = []
    for row in rows:
        rest = (1 - sum(row.values())) / (len(LABELS) - len(row))
        out.append([row.get(label, rest) for label in LABELS])
    return torch.tensor(out)


def test_constrained_decoding_keeps_a_name_in_one_piece() -> None:
    # argmax: B-LOC then I-ORG, i.e. "New" (LOC) and "York" (ORG); BIO allows only a
    # continuation of LOC after B-LOC, and New York as one LOC is the likeliest valid path
    text = "New York"
    probs = table([{"B-LOC": 0.6, "B-ORG": 0.3}, {"I-ORG": 0.5, "I-LOC": 0.4, "O": 0.05}])
    offsets, word_ids = [(0, 3), (4, 8)], [0, 1]
    loose = token_entities(text, offsets, word_ids, probs, LABELS, constrained=False)
    assert [(e.text, e.label) for e in loose] == [("New", "LOC"), ("York", "ORG")]
    ents = token_entities(text, offsets, word_ids, probs, LABELS)
    assert [(e.text, e.label) for e in ents] == [("New York", "LOC")]
    assert ents[0].score == pytest.approx((0.6 + 0.4) / 2)


def test_an_inside_tag_never_starts_a_sentence_or_follows_outside() -> None:
    probs = table([{"I-PER": 0.5, "O": 0.4}, {"O": 0.9}, {"I-PER": 0.6, "B-PER": 0.3}])
    path = [LABELS[i] for i in viterbi(probs, LABELS)]
    assert path == ["O", "O", "B-PER"]


def valid(path: tuple[int, ...]) -> bool:
    prev = "O"
    for i in path:
        tag = LABELS[i]
        if tag.startswith("I-") and prev not in (f"B-{tag[2:]}", tag):
            return False
        prev = tag
    return True


@pytest.mark.parametrize("seed", range(5))
def test_viterbi_finds_the_best_valid_path(seed: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    probs = torch.softmax(torch.randn(4, len(LABELS), generator=gen) * 2, -1)
    paths = [p for p in itertools.product(range(len(LABELS)), repeat=4) if valid(p)]
    best = max(paths, key=lambda p: float(torch.prod(probs[range(4), list(p)])))
    assert tuple(viterbi(probs, LABELS)) == best


def test_a_batch_of_texts_decodes_as_each_text_alone() -> None:
    """The engine decodes a micro-batch's texts in one Viterbi batch: texts of different
    lengths (none, one word, many) must get the path each would get alone."""
    gen = torch.Generator().manual_seed(7)
    lengths = [5, 0, 1, 4, 6, 2, 4]
    tables = [torch.softmax(torch.randn(n, len(LABELS), generator=gen) * 2, -1) for n in lengths]
    brute = []
    for probs in tables:
        n = len(probs)
        paths = [p for p in itertools.product(range(len(LABELS)), repeat=n) if valid(p)]
        best = max(paths, key=lambda p: float(torch.prod(probs[range(n), list(p)])))
        brute.append(list(best) if n else [])
    assert viterbi_many(tables, LABELS) == brute[:4] + viterbi_many(tables[4:], LABELS)
    assert viterbi_many(tables[:4], LABELS) == brute[:4]
    assert [viterbi(t, LABELS) for t in tables] == viterbi_many(tables, LABELS)


def test_many_texts_give_the_entities_each_gives_alone() -> None:
    gen = torch.Generator().manual_seed(3)
    text = "Ada met Bob in London"
    spans = [(0, 3), (4, 7), (8, 11), (12, 14), (15, 21)]
    items = []
    for n in (5, 0, 3, 5):
        probs = torch.softmax(torch.randn(n, len(LABELS), generator=gen) * 3, -1)
        items.append(TokenTable(text, spans[:n], list(range(n)), probs))
    for constrained in (True, False):
        alone = [
            token_entities(t.text, t.offsets, t.word_ids, t.probs, LABELS, constrained)
            for t in items
        ]
        assert token_entities_many(items, LABELS, constrained) == alone
    assert any(alone)


def test_sub_tokens_follow_their_word_and_no_words_no_entities() -> None:
    text = "Bobbington left"
    probs = table([{"B-PER": 0.9}, {"O": 0.9}, {"O": 0.9}])  # "Bobb" "##ington" "left"
    ents = token_entities(text, [(0, 4), (4, 10), (11, 15)], [0, 0, 1], probs, LABELS)
    assert [(e.text, e.label) for e in ents] == [("Bobbington", "PER")]
    assert token_entities("", [], [], torch.zeros(0, len(LABELS)), LABELS) == []
