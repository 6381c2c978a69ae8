"""Cache GELU(Z_0..Z_L) once per example: the backbone is frozen, so every epoch reuses it.

Texts are cut into the engine's windows (models/windows.py), so a head trains on exactly
the inputs it will see at inference. The states are written token-major as float16 to a
numpy memmap under ``cache/`` (one folder per backbone x data file x options), which keeps
RAM flat however big the data set and lets the adaptive / last / uniform runs share it.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from heads.casing import SPECIAL, token_case_ids, window_case_ids
from models.backbone import Backbone
from models.reference import all_hidden_states
from models.windows import collate, encode_texts, make_windows, plan_batches
from train.config import ConfigError
from train.data import Example, TokenExample, case_view, label_index, text_targets

IGNORE = -100
CACHE_VERSION = 1


@dataclass
class CachedSplit:
    """Windows of one data set with their cached states and labels.

    ``states[win_offset[w] : win_offset[w] + win_length[w]]`` are window w's tokens,
    each (L+1, H). ``own`` gives, per window, the token range (window positions, specials
    included) it answers for at inference. ``token_labels`` is aligned with ``states``.
    """

    states: np.ndarray
    win_offset: np.ndarray
    win_length: np.ndarray
    win_text: np.ndarray
    own: np.ndarray
    labels: np.ndarray
    token_labels: np.ndarray
    num_examples: int
    seconds: float
    examples_per_second: float
    # Per cached token, its casing class (heads/casing.py); computed at load time for heads
    # with case features (not stored: the cache and its key do not change).
    case_ids: np.ndarray | None = None
    # The same for the upper-cased text (``--case-upper`` training shows some windows so).
    case_upper: np.ndarray | None = None

    @property
    def num_windows(self) -> int:
        return len(self.win_offset)

    def window_states(self, w: int) -> np.ndarray:
        a = int(self.win_offset[w])
        return self.states[a : a + int(self.win_length[w])]

    def window_labels(self, w: int) -> np.ndarray:
        a = int(self.win_offset[w])
        return self.token_labels[a : a + int(self.win_length[w])]


def cache_key(
    backbone: Backbone, examples: Sequence[Example], labels: Sequence[str], overlap: int
) -> str:
    """Identifies backbone, window policy, label set and the exact examples."""
    h = hashlib.sha256()
    info = backbone.info
    h.update(f"{CACHE_VERSION}|{info.fingerprint}|{info.max_length}|{overlap}|".encode())
    h.update(json.dumps(list(labels)).encode())
    for e in examples:
        if isinstance(e, TokenExample):
            h.update(("\x00".join(e.tokens) + "\x01" + "\x00".join(e.tags) + "\x02").encode())
        else:
            h.update((e.text + "\x01" + e.label + "\x02").encode())
    return h.hexdigest()[:20]


def _word_char_spans(tokens: Sequence[str]) -> list[tuple[int, int]]:
    spans, pos = [], 0
    for tok in tokens:
        spans.append((pos, pos + len(tok)))
        pos += len(tok) + 1
    return spans


def subtoken_labels(
    example: TokenExample,
    offsets: Sequence[tuple[int, int]],
    labels: Sequence[str],
) -> list[int]:
    """One label per sub-token of ``example.text``: its word's tag, B- turned into I- after
    the word's first sub-token. The engine tags a (tokenizer) word by its first sub-token,
    and the tokenizer may split one CoNLL word into several (``U.S.``): training every
    sub-token this way makes the decoded entity cover the whole word."""
    spans = _word_char_spans(example.tokens)
    out: list[int] = []
    word = 0
    for a, b in offsets:
        # A token starting in the space before a word (or an empty byte-level piece)
        # belongs to the next word, as the engine's word grouping has it.
        while word < len(spans) - 1 and a >= spans[word][1]:
            word += 1
        if a >= spans[word][1] and b <= a:
            out.append(IGNORE)
            continue
        tag = example.tags[word]
        if a > spans[word][0] and tag.startswith("B-"):
            tag = "I-" + tag[2:]
        out.append(label_index(labels, tag) if tag in labels else label_index(labels, "O"))
    return out


def build_cache(
    backbone: Backbone,
    examples: Sequence[Example],
    labels: Sequence[str],
    cache_dir: str | Path,
    overlap: int = 64,
    max_batch_tokens: int = 8192,
    desc: str = "caching",
) -> CachedSplit:
    """Run the backbone once over every window and store GELU(Z_i) as float16 (or reuse)."""
    key = cache_key(backbone, examples, labels, overlap)
    folder = Path(cache_dir) / key
    if (folder / "meta.json").is_file():
        return load_cache(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tok = backbone.tokenizer
    texts = [e.text for e in examples]
    encodings = encode_texts(tok, texts)
    windows = make_windows(encodings, tok, backbone.info.max_length, overlap)
    lengths = np.array([w.length for w in windows], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
    total = int(lengths.sum())
    s, hidden = backbone.info.num_states, backbone.info.hidden_size
    tmp = folder / "states.tmp.npy"
    states = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float16, shape=(total, s, hidden))
    token_labels = np.full(total, IGNORE, dtype=np.int16)
    own = np.zeros((len(windows), 2), dtype=np.int64)
    for wi, w in enumerate(windows):
        own[wi] = w.owned_positions
        ex = examples[w.text_index]
        if isinstance(ex, TokenExample):
            sub = subtoken_labels(ex, encodings[w.text_index].offsets, labels)
            a = int(offsets[wi]) + 1
            token_labels[a : a + (w.end - w.start)] = sub[w.start : w.end]
    seq_labels = text_targets(examples, labels)  # (N,) indices, or (N, labels) multi-label
    pad = tok.pad_token_id or 0
    started = time.perf_counter()
    batches = plan_batches(windows, max_batch_tokens, 256)
    with tqdm(total=total, desc=desc, unit="tok", mininterval=5) as bar:
        for batch in batches:
            ids, mask = collate([windows[i] for i in batch], pad, backbone.device)
            hs = all_hidden_states(backbone, ids, mask)
            act = F.gelu(torch.stack([h.float() for h in hs], 2)).to(torch.float16).cpu()
            for row, wi in enumerate(batch):
                n = int(lengths[wi])
                a = int(offsets[wi])
                states[a : a + n] = act[row, :n].numpy()
            bar.update(int(mask.sum()))
    seconds = time.perf_counter() - started
    states.flush()
    del states
    tmp.rename(folder / "states.npy")
    np.savez(
        folder / "index.npz",
        win_offset=offsets,
        win_length=lengths,
        win_text=np.array([w.text_index for w in windows], dtype=np.int64),
        own=own,
        labels=seq_labels,
        token_labels=token_labels,
    )
    meta = {
        "num_examples": len(examples),
        "num_windows": len(windows),
        "tokens": total,
        "seconds": seconds,
        "examples_per_second": len(examples) / max(seconds, 1e-9),
        "tokens_per_second": total / max(seconds, 1e-9),
        "backbone": backbone.info.name,
        "overlap": overlap,
        "labels": list(labels),
    }
    (folder / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    return load_cache(folder)


def with_case_ids(
    split: CachedSplit,
    examples: Sequence[Example],
    tokenizer: Any,
    max_length: int,
    overlap: int,
) -> CachedSplit:
    """``split`` with ``case_ids`` aligned to its cached tokens (a no-op if already there).

    The texts are re-encoded and re-windowed exactly as :func:`build_cache` did (cheap next
    to the backbone pass), so old caches serve heads with case features unchanged."""
    if split.case_ids is not None:
        return split
    return replace(split, case_ids=case_ids_of(split, examples, tokenizer, max_length, overlap))


CASED_TOKENIZER = (
    "case views and --case-upper reuse the cached states, which needs a tokenizer that "
    "ignores case (the default MiniLM is uncased); score a cased backbone with "
    "`sidetask eval --case all` instead"
)


def ignores_case(tokenizer: Any, examples: Sequence[Example]) -> bool:
    """Whether lower- and upper-casing the texts leaves every token id as it was."""
    ids = [e.ids for e in encode_texts(tokenizer, [e.text for e in examples])]
    return all(
        [e.ids for e in encode_texts(tokenizer, [x.text for x in case_view(examples, v)])] == ids
        for v in ("lower", "upper")
    )


def with_upper_case_ids(
    split: CachedSplit,
    examples: Sequence[Example],
    tokenizer: Any,
    max_length: int,
    overlap: int,
) -> CachedSplit:
    """``split`` with ``case_upper``: the casing classes its tokens have in the upper-cased
    text. Only right for a tokenizer that ignores case (the cached states are reused), which
    :func:`ignores_case` checks (else ConfigError)."""
    if not ignores_case(tokenizer, examples):
        raise ConfigError(CASED_TOKENIZER)
    upper = case_view(examples, "upper")
    return replace(split, case_upper=case_ids_of(split, upper, tokenizer, max_length, overlap))


def case_ids_of(
    split: CachedSplit,
    examples: Sequence[Example],
    tokenizer: Any,
    max_length: int,
    overlap: int,
) -> np.ndarray:
    """Casing class per cached token of ``split``, read from ``examples``' texts."""
    encodings = encode_texts(tokenizer, [e.text for e in examples])
    windows = make_windows(encodings, tokenizer, max_length, overlap)
    if len(windows) != split.num_windows:
        raise ValueError("cached windows do not match these examples")
    per_text = [
        token_case_ids(e.text, enc.offsets) for e, enc in zip(examples, encodings, strict=True)
    ]
    out = np.full(len(split.token_labels), SPECIAL, dtype=np.int8)
    for wi, w in enumerate(windows):
        n, a = int(split.win_length[wi]), int(split.win_offset[wi])
        if n != w.length:
            raise ValueError("cached windows do not match these examples")
        out[a : a + n] = window_case_ids(per_text[w.text_index], w.start, w.end, n)
    return out


def load_cache(folder: str | Path) -> CachedSplit:
    folder = Path(folder)
    meta = json.loads((folder / "meta.json").read_text())
    index = np.load(folder / "index.npz")
    states = np.load(folder / "states.npy", mmap_mode="r")
    return CachedSplit(
        states=states,
        win_offset=index["win_offset"],
        win_length=index["win_length"],
        win_text=index["win_text"],
        own=index["own"],
        labels=index["labels"],
        token_labels=index["token_labels"],
        num_examples=int(meta["num_examples"]),
        seconds=float(meta["seconds"]),
        examples_per_second=float(meta["examples_per_second"]),
    )
