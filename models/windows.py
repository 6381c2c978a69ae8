"""Tokenisation into fixed-size windows, with character offsets kept.

Policy for texts longer than the backbone's window (documented in README):
- each text is tokenised once, whole, without special tokens; windows of
  ``max_length - 2`` content tokens are cut from it with ``overlap`` tokens shared by
  neighbours, then the special tokens are added;
- window 0 is exactly what truncation would give, so the main task (embedding,
  generation) sees the same input as the model would alone;
- sequence heads pool over all windows of a text (token-weighted);
- token heads take each token's prediction from the one window that *owns* it: the
  overlap is split in the middle, so every token (and character) is covered exactly once
  and always by the window where it has the most context.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch


@dataclass(frozen=True)
class TextEncoding:
    """One whole text as content tokens (no specials), with char offsets and word ids."""

    ids: list[int]
    offsets: list[tuple[int, int]]
    word_ids: list[int | None]


@dataclass(frozen=True)
class Window:
    """A slice of one text's tokens; ``own_start:own_end`` are the tokens it answers for."""

    text_index: int
    start: int
    end: int
    own_start: int
    own_end: int
    input_ids: tuple[int, ...]

    @property
    def length(self) -> int:
        return len(self.input_ids)

    @property
    def owned_positions(self) -> tuple[int, int]:
        """``[first, stop)``: the window positions (the leading special token is position 0)
        of the tokens this window owns."""
        lo, hi = max(self.own_start, self.start), min(self.own_end, self.end)
        return 1 + lo - self.start, 1 + hi - self.start

    def write_owned(self, table: torch.Tensor, rows: torch.Tensor) -> None:
        """Copy the rows of the tokens this window owns (``rows``: one per window position,
        specials included) into its text's per-token ``table``."""
        first, stop = self.owned_positions
        if stop > first:
            lo = self.start + first - 1
            table[lo : lo + stop - first] = rows[first:stop]


def encode_texts(tokenizer: Any, texts: Sequence[str]) -> list[TextEncoding]:
    """Tokenise whole texts (fast tokenizer) without truncation or special tokens."""
    if not texts:
        return []
    batch = tokenizer(
        list(texts),
        add_special_tokens=False,
        return_offsets_mapping=True,
        return_attention_mask=False,
        truncation=False,
        verbose=False,
    )
    out = []
    for i in range(len(texts)):
        out.append(
            TextEncoding(
                ids=list(batch["input_ids"][i]),
                offsets=[(int(a), int(b)) for a, b in batch["offset_mapping"][i]],
                word_ids=list(batch.word_ids(i)),
            )
        )
    return out


def special_ids(tokenizer: Any) -> tuple[list[int], list[int]]:
    """The tokens around every window: [CLS]..[SEP] for BERT, <s>..</s> for RoBERTa/BART."""
    first = tokenizer.cls_token_id if tokenizer.cls_token_id is not None else tokenizer.bos_token_id
    last = tokenizer.sep_token_id if tokenizer.sep_token_id is not None else tokenizer.eos_token_id
    return ([first] if first is not None else []), ([last] if last is not None else [])


def make_windows(
    encodings: Sequence[TextEncoding],
    tokenizer: Any,
    max_length: int,
    overlap: int,
    first_only: bool = False,
) -> list[Window]:
    """Cut every text into windows; ``first_only`` keeps window 0 (truncation)."""
    prefix, suffix = special_ids(tokenizer)
    content = max_length - len(prefix) - len(suffix)
    if content < 2:
        raise ValueError(f"max_length {max_length} leaves no room for content tokens")
    overlap = max(0, min(overlap, content // 2))
    step = content - overlap
    windows: list[Window] = []
    for text_index, enc in enumerate(encodings):
        n = len(enc.ids)
        starts = [0]
        while not first_only and starts[-1] + content < n:
            starts.append(starts[-1] + step)
        for j, start in enumerate(starts):
            end = min(start + content, n)
            own_start = 0 if j == 0 else start + overlap // 2
            own_end = n if j == len(starts) - 1 else starts[j + 1] + overlap // 2
            if first_only:
                own_end = end
            ids = (*prefix, *enc.ids[start:end], *suffix)
            windows.append(Window(text_index, start, end, own_start, own_end, ids))
    return windows


def collate(
    windows: Sequence[Window], pad_id: int, device: torch.device | str = "cpu"
) -> tuple[torch.Tensor, torch.Tensor]:
    """Pad windows into (input_ids, attention_mask), right padding."""
    longest = max(w.length for w in windows)
    ids = torch.full((len(windows), longest), pad_id, dtype=torch.long)
    mask = torch.zeros((len(windows), longest), dtype=torch.long)
    for row, w in enumerate(windows):
        ids[row, : w.length] = torch.tensor(w.input_ids, dtype=torch.long)
        mask[row, : w.length] = 1
    return ids.to(device), mask.to(device)


def plan_batches(windows: Sequence[Window], max_tokens: int, max_size: int) -> list[list[int]]:
    """Group window indices, longest first, so padded tokens (size x longest) stay under caps."""
    order = sorted(range(len(windows)), key=lambda i: -windows[i].length)
    batches: list[list[int]] = []
    current: list[int] = []
    for i in order:
        longest = windows[current[0]].length if current else windows[i].length
        if current and ((len(current) + 1) * longest > max_tokens or len(current) >= max_size):
            batches.append(current)
            current = []
        current.append(i)
    if current:
        batches.append(current)
    return batches
