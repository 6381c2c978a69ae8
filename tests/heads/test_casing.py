"""Casing classes: the table a token head with case features learns from, read from the
original text so an uncased tokenizer's lower-casing does not hide it."""

from __future__ import annotations

import pytest
import torch

from heads.casing import (
    DIGIT,
    LOWER,
    LOWERED,
    MIXED,
    NUM_CASE_CLASSES,
    OTHER,
    SPECIAL,
    TITLE,
    UPPER,
    case_class,
    token_case_ids,
    window_case_ids,
)
from heads.modules import TokenClassificationHead


@pytest.mark.parametrize(
    ("piece", "expected"),
    [
        ("", SPECIAL),
        ("  ", SPECIAL),
        (",", OTHER),
        ("--", OTHER),
        ("$", OTHER),
        ("1996", DIGIT),
        ("3rd", DIGIT),
        ("paris", LOWER),
        ("ton", LOWER),
        ("é", LOWER),
        ("Paris", TITLE),
        ("A", TITLE),
        ("Éric", TITLE),
        ("O'Neil", MIXED),
        ("US", UPPER),
        ("U.S.", UPPER),
        ("NATO", UPPER),
        ("iPhone", MIXED),
        ("McDonald", MIXED),
        (" Paris", TITLE),
    ],
)
def test_case_class_table(piece: str, expected: int) -> None:
    assert case_class(piece) == expected


@pytest.mark.parametrize("piece", ["", ",", "1996", "paris", "Paris", "US", "iPhone", "Éric"])
def test_lowered_is_the_class_of_the_lower_cased_text(piece: str) -> None:
    assert LOWERED[case_class(piece)] == case_class(piece.lower())


def test_classes_come_from_the_original_text_at_the_offsets() -> None:
    text = "EU rejects German call"
    offsets = [(0, 2), (3, 10), (11, 17), (18, 22), (22, 22)]
    assert token_case_ids(text, offsets) == [UPPER, LOWER, TITLE, LOWER, SPECIAL]
    # A sub-token carries its own characters' class: "Bobbington" -> "Bob" + "bington".
    assert token_case_ids("Bobbington", [(0, 3), (3, 10)]) == [TITLE, LOWER]


def test_window_ids_put_special_around_the_content_and_on_padding() -> None:
    ids = [TITLE, LOWER, UPPER, DIGIT]
    assert window_case_ids(ids, 1, 3, width=6) == [SPECIAL, LOWER, UPPER, SPECIAL, SPECIAL, SPECIAL]
    assert window_case_ids(ids, 0, 4, width=6) == [SPECIAL, TITLE, LOWER, UPPER, DIGIT, SPECIAL]
    with pytest.raises(ValueError):
        window_case_ids(ids, 0, 4, width=4)


def test_case_features_start_neutral_and_then_tell_cases_apart() -> None:
    torch.manual_seed(0)
    head = TokenClassificationHead(16, 5, 2, ff_dim=32, case_features=True).eval()
    assert head.case_embedding is not None
    x = torch.randn(1, 4, 16)
    mask = torch.ones(1, 4, dtype=torch.long)
    lower = torch.full((1, 4), LOWER)
    title = torch.full((1, 4), TITLE)
    with torch.no_grad():
        # Zero-initialised: an untrained casing embedding does not change the plain head.
        torch.testing.assert_close(head(x, mask, lower), head(x, mask, title))
        head.case_embedding.weight.copy_(torch.randn(NUM_CASE_CLASSES, 16))
        assert not torch.allclose(head(x, mask, lower), head(x, mask, title))
    with pytest.raises(ValueError):
        head(x, mask)
    with pytest.raises(ValueError):
        TokenClassificationHead(16, 5, 2, ff_dim=32)(x, mask, lower)
