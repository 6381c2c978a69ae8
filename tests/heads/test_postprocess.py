"""Answers users read: class scores, and entities whose offsets point into the original text."""

from __future__ import annotations

import pytest
import torch

from heads.postprocess import Word, classification_answer, decode_entities, words_from_tokens


def test_classification_answer_has_label_score_and_all_scores() -> None:
    out = classification_answer(torch.tensor([0.25, 0.75]), ["negative", "positive"])
    assert out == {
        "label": "positive",
        "score": 0.75,
        "scores": {"negative": 0.25, "positive": 0.75},
    }


def test_bio_decoding_joins_continuations_and_splits_types() -> None:
    text = "Ada Lovelace met Bob in London Town"
    spans = [(0, 3), (4, 12), (13, 16), (17, 20), (21, 23), (24, 30), (31, 35)]
    tags = ["B-PER", "I-PER", "O", "B-PER", "O", "B-LOC", "I-LOC"]
    words = [Word(a, b, t, 0.9) for (a, b), t in zip(spans, tags, strict=True)]
    ents = decode_entities(text, words)
    assert [(e["text"], e["label"]) for e in ents] == [
        ("Ada Lovelace", "PER"),
        ("Bob", "PER"),
        ("London Town", "LOC"),
    ]
    assert ents[0]["start"] == 0 and ents[0]["end"] == 12


def test_stray_inside_tag_starts_an_entity_and_type_change_splits() -> None:
    text = "Paris Berlin"
    words = [Word(0, 5, "I-LOC", 0.5), Word(6, 12, "I-ORG", 0.7)]
    ents = decode_entities(text, words)
    assert [(e["text"], e["label"]) for e in ents] == [("Paris", "LOC"), ("Berlin", "ORG")]


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
