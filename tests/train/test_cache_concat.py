"""A bigger training file made of cached files trains from their caches, without a second
backbone pass, and on exactly the states a full pass would have cached."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from models.backbone import Backbone
from train.cache_concat import CacheConcatError, concat_caches
from train.data import read_examples
from train.features import build_cache

LABELS = ["0", "1"]


def tsv(path: Path, rows: list[tuple[str, str]]) -> Path:
    path.write_text("text\tlabel\n" + "".join(f"{t}\t{y}\n" for t, y in rows))
    return path


def rows(start: int, n: int) -> list[tuple[str, str]]:
    # a few texts longer than the tiny backbone's window, so texts span several windows
    return [(f"review {i} " + "word " * (3 + 40 * (i % 3)), str(i % 2)) for i in range(start, n)]


def test_concatenated_cache_equals_a_full_pass_and_is_reused(
    tmp_path: Path, tiny_roberta: Backbone
) -> None:
    a, b = tsv(tmp_path / "a.tsv", rows(0, 7)), tsv(tmp_path / "b.tsv", rows(7, 12))
    whole = tsv(tmp_path / "whole.tsv", rows(0, 12))
    cache = tmp_path / "cache"
    for part in (a, b):
        build_cache(tiny_roberta, read_examples(part), LABELS, cache, 16)
    joined = concat_caches(tiny_roberta, whole, [a, b], LABELS, cache, 16)
    full = build_cache(tiny_roberta, read_examples(whole), LABELS, tmp_path / "full", 16)
    assert joined.num_examples == full.num_examples == 12
    assert joined.num_windows == full.num_windows > 12  # long texts: several windows
    for name in ("win_offset", "win_length", "win_text", "own", "labels", "token_labels"):
        assert np.array_equal(getattr(joined, name), getattr(full, name)), name
    assert np.allclose(joined.states, full.states, atol=1e-2)
    # a training run on the whole file finds the assembled cache instead of recomputing it
    again = build_cache(tiny_roberta, read_examples(whole), LABELS, cache, 16)
    assert np.array_equal(again.states, joined.states) and again.seconds == joined.seconds


def test_refuses_parts_that_do_not_make_up_the_file(tmp_path: Path, tiny_roberta: Backbone) -> None:
    a, b = tsv(tmp_path / "a.tsv", rows(0, 4)), tsv(tmp_path / "b.tsv", rows(4, 8))
    cache = tmp_path / "cache"
    build_cache(tiny_roberta, read_examples(a), LABELS, cache, 16)
    swapped = tsv(tmp_path / "ba.tsv", rows(4, 8) + rows(0, 4))
    with pytest.raises(CacheConcatError, match="not the concatenation"):
        concat_caches(tiny_roberta, swapped, [a, b], LABELS, cache, 16)
    whole = tsv(tmp_path / "ab.tsv", rows(0, 8))
    with pytest.raises(CacheConcatError, match="has no cache"):  # b was never cached
        concat_caches(tiny_roberta, whole, [a, b], LABELS, cache, 16)
