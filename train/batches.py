"""Length-bucketed batches over cached windows, capped by padded tokens.

Kinds that answer per text (sequence, multi-label) batch whole texts (all their windows:
the loss is on the token-weighted pool over windows, as the engine answers); token kinds
batch single windows. The kind (``train/kinds/``) says which and supplies the targets.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

from heads.casing import SPECIAL
from train.features import IGNORE, CachedSplit

if TYPE_CHECKING:
    from train.kinds import TrainKind


@dataclass
class Batch:
    """Activated states (W, L+1, T, H) float16, mask (W, T), and targets."""

    activated: torch.Tensor
    mask: torch.Tensor
    group: torch.Tensor  # (W,) index of the window's text within the batch
    text_ids: torch.Tensor  # (N,) the texts of the batch, in group order
    labels: torch.Tensor  # (N,) / (N, labels) per text, or (W, T) per token (IGNORE elsewhere)
    case_ids: torch.Tensor | None = None  # (W, T) casing classes, when the split has them
    case_upper: torch.Tensor | None = None  # (W, T) those of the upper-cased text, if known

    @property
    def num_texts(self) -> int:
        return int(self.text_ids.shape[0])

    def to(self, device: torch.device) -> Batch:
        return Batch(
            self.activated.to(device, non_blocking=True),
            self.mask.to(device),
            self.group.to(device),
            self.text_ids.to(device),
            self.labels.to(device),
            None if self.case_ids is None else self.case_ids.to(device),
            None if self.case_upper is None else self.case_upper.to(device),
        )


def windows_by_text(split: CachedSplit) -> list[list[int]]:
    out: list[list[int]] = [[] for _ in range(split.num_examples)]
    for w, t in enumerate(split.win_text.tolist()):
        out[t].append(w)
    return out


def _kind(kind: str | TrainKind) -> TrainKind:
    from train.kinds import train_kind  # the kinds build their batches with this module

    return train_kind(kind)


def plan(
    split: CachedSplit, kind: str | TrainKind, max_tokens: int, shuffle: bool, seed: int = 0
) -> list[list[int]]:
    """Batches of text ids (per-text kinds) or window ids (token kinds), sorted by length into
    buckets; with ``shuffle`` the bucket contents and the batch order are shuffled."""
    rng = random.Random(seed)
    lengths = split.win_length
    if _kind(kind).by_text:
        groups = windows_by_text(split)
        units = list(range(split.num_examples))
        size = [len(groups[u]) for u in units]
        longest = [int(lengths[groups[u]].max()) for u in units]
    else:
        units = list(range(split.num_windows))
        size = [1] * len(units)
        longest = [int(x) for x in lengths]
    if shuffle:
        rng.shuffle(units)  # ties in length are broken at random every epoch
    units.sort(key=lambda u: longest[u])
    batches: list[list[int]] = []
    current: list[int] = []
    rows = top = 0
    for u in units:
        new_rows, new_top = rows + size[u], max(top, longest[u])
        if current and new_rows * new_top > max_tokens:
            batches.append(current)
            current, new_rows, new_top = [], size[u], longest[u]
        current.append(u)
        rows, top = new_rows, new_top
    if current:
        batches.append(current)
    if shuffle:
        rng.shuffle(batches)
    return batches


def load_batch(
    split: CachedSplit, kind: str | TrainKind, units: list[int], groups: list[list[int]] | None
) -> Batch:
    """Gather the cached states of ``units`` into one padded batch (``groups``: the
    :func:`windows_by_text` of per-text kinds, computed here when not given)."""
    kind = _kind(kind)
    if kind.by_text:
        groups = groups if groups is not None else windows_by_text(split)
        wins = [w for u in units for w in groups[u]]
        group = [i for i, u in enumerate(units) for _ in groups[u]]
    else:
        wins, group = list(units), list(range(len(units)))
    longest = int(split.win_length[wins].max())
    s, h = split.states.shape[1], split.states.shape[2]
    buf = np.zeros((len(wins), longest, s, h), dtype=np.float16)
    mask = np.zeros((len(wins), longest), dtype=np.int64)
    tok = np.full((len(wins), longest), IGNORE, dtype=np.int64)
    case = None if split.case_ids is None else np.full((len(wins), longest), SPECIAL, np.int64)
    upper = None if split.case_upper is None else np.full((len(wins), longest), SPECIAL, np.int64)
    for row, w in enumerate(wins):
        n = int(split.win_length[w])
        buf[row, :n] = split.window_states(w)
        mask[row, :n] = 1
        if not kind.by_text:
            tok[row, :n] = split.window_labels(w)
        if case is not None and split.case_ids is not None:
            a = int(split.win_offset[w])
            case[row, :n] = split.case_ids[a : a + n]
        if upper is not None and split.case_upper is not None:
            a = int(split.win_offset[w])
            upper[row, :n] = split.case_upper[a : a + n]
    activated = torch.from_numpy(buf).permute(0, 2, 1, 3)
    labels = kind.targets(split, units, torch.from_numpy(tok))
    return Batch(
        activated,
        torch.from_numpy(mask),
        torch.tensor(group, dtype=torch.long),
        torch.tensor(units, dtype=torch.long),
        labels,
        None if case is None else torch.from_numpy(case),
        None if upper is None else torch.from_numpy(upper),
    )
