"""The validation split: carved from each training file, so that no choice touches dev.

Every choice a training run makes (early stopping, the checkpoint kept, the learning-rate
schedule, the temperature) is made on this split; the dev file is scored once, with the
head the run picked, and only reported. Seeds and settings are then compared on the
validation metric too (``train.sweep`` reads any manifest key).

The split is *blocked*: the file is cut into runs of ``block`` consecutive texts and a
seeded share of the runs is held out. Consecutive CoNLL sentences come from one news
article and consecutive CoLA sentences from one publication, so a random sentence-level
split would put near-twins on both sides; blocks keep most of an article (or paper) on
one side. The split depends only on the file's size, the share, the block size and
``val_seed`` (not on the training seed), so every seed of a setting is chosen on the
same held-out texts and the cached backbone states of the whole file are reused.
"""

from __future__ import annotations

import math
import random
from dataclasses import replace
from pathlib import Path

import numpy as np

from train.features import CachedSplit


def carve(n: int, fraction: float, seed: int, block: int = 50) -> tuple[list[int], list[int]]:
    """(training, validation) text indices of a file of ``n`` texts, both in file order.

    ``block`` shrinks for small files so that there are always at least ten blocks.
    """
    if not 0 < fraction < 1:
        raise ValueError(f"the validation share must be in (0, 1), got {fraction}")
    if n < 2:
        raise ValueError(f"a file of {n} text(s) cannot give a validation split")
    size = max(1, min(block, n // 10))
    blocks = [list(range(a, min(a + size, n))) for a in range(0, n, size)]
    count = min(len(blocks) - 1, max(1, math.ceil(fraction * len(blocks))))
    held = set(random.Random(seed).sample(range(len(blocks)), count))
    val = [i for b in sorted(held) for i in blocks[b]]
    taken = set(val)
    return [i for i in range(n) if i not in taken], val


def subset_split(split: CachedSplit, texts: list[int]) -> CachedSplit:
    """The windows of ``texts`` (indices in ``split``, ascending) as their own split.

    No states are copied: the windows keep their offsets into the shared memory-mapped
    states (and token labels, case ids), only the per-window and per-text index arrays
    are subset, with the texts renumbered 0..len(texts)-1.
    """
    order = np.asarray(texts, dtype=np.int64)
    if len(order) and (np.any(np.diff(order) <= 0) or order[-1] >= split.num_examples):
        raise ValueError("texts must be ascending indices into the split")
    renumber = np.full(split.num_examples, -1, dtype=np.int64)
    renumber[order] = np.arange(len(order))
    keep = renumber[split.win_text] >= 0
    return replace(
        split,
        win_offset=split.win_offset[keep],
        win_length=split.win_length[keep],
        win_text=renumber[split.win_text[keep]],
        own=split.own[keep],
        labels=split.labels[order],
        num_examples=len(order),
    )


def val_name(train_name: str) -> str:
    """``sst2_train`` (a training file's metric prefix) -> ``sst2_val``."""
    return train_name.removesuffix("_train") + "_val"


def describe(path: str | Path, n: int, train: list[int], val: list[int]) -> dict[str, object]:
    """What the manifest records of one file's split (enough to rebuild and audit it)."""
    return {"file": str(path), "texts": n, "train": len(train), "val": len(val)}
