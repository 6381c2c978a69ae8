"""Long texts are cut into windows that cover every token exactly once."""

from __future__ import annotations

import pytest

from models.backbone import Backbone
from models.windows import collate, encode_texts, make_windows, plan_batches


def test_first_window_is_what_truncation_gives(minilm: Backbone) -> None:
    tok = minilm.tokenizer
    texts = ["short one", "long " * 500, ""]
    windows = make_windows(encode_texts(tok, texts), tok, 256, 64, first_only=True)
    assert len(windows) == 3
    for w, text in zip(windows, texts, strict=True):
        expected = tok(text, truncation=True, max_length=256)["input_ids"]
        assert list(w.input_ids) == expected


@pytest.mark.parametrize("overlap", [0, 1, 7, 64])
@pytest.mark.parametrize("n_words", [1, 40, 300, 1000])
def test_every_token_is_owned_by_exactly_one_window(
    minilm: Backbone, overlap: int, n_words: int
) -> None:
    tok = minilm.tokenizer
    text = " ".join(f"w{i}" for i in range(n_words))
    enc = encode_texts(tok, [text])
    windows = make_windows(enc, tok, 64, overlap)
    owners = [0] * len(enc[0].ids)
    for w in windows:
        assert w.length <= 64
        assert w.start <= w.own_start <= w.own_end <= w.end  # a window owns only what it sees
        for j in range(w.own_start, w.own_end):
            owners[j] += 1
    assert owners == [1] * len(enc[0].ids)


def test_windows_keep_the_text_index(minilm: Backbone) -> None:
    tok = minilm.tokenizer
    windows = make_windows(encode_texts(tok, ["a " * 300, "b"]), tok, 128, 16)
    assert [w.text_index for w in windows][-1] == 1
    assert {w.text_index for w in windows} == {0, 1}


def test_collate_pads_right_with_a_mask(minilm: Backbone) -> None:
    tok = minilm.tokenizer
    windows = make_windows(encode_texts(tok, ["one two three", "x"]), tok, 32, 0)
    ids, mask = collate(windows, tok.pad_token_id)
    assert ids.shape == mask.shape == (2, 5)
    assert mask.sum(1).tolist() == [5, 3]
    assert ids[1, 3:].tolist() == [tok.pad_token_id] * 2


def test_batches_respect_token_and_size_caps(minilm: Backbone) -> None:
    tok = minilm.tokenizer
    texts = [" ".join(["w"] * n) for n in (3, 50, 7, 120, 1, 30, 60)]
    windows = make_windows(encode_texts(tok, texts), tok, 256, 0)
    batches = plan_batches(windows, max_tokens=200, max_size=3)
    assert sorted(i for b in batches for i in b) == list(range(len(windows)))
    for b in batches:
        longest = max(windows[i].length for i in b)
        assert len(b) <= 3
        assert len(b) == 1 or len(b) * longest <= 200


def test_too_small_window_is_refused(minilm: Backbone) -> None:
    with pytest.raises(ValueError, match="no room"):
        make_windows(encode_texts(minilm.tokenizer, ["x"]), minilm.tokenizer, 3, 0)
