"""Assemble a data file's feature cache from the caches of the files it concatenates.

The backbone pass is the expensive part of a run (IMDB: ~25 minutes per 4,000 reviews on
one CPU thread). A bigger training file written as an already cached file followed by new
rows needs the backbone only for the new rows: each window's states depend on that window
alone, so the cache of the whole is the parts' caches one after the other, stored under
the key :func:`train.features.build_cache` looks up for the whole file.

    python -m train.cache_concat --out runs/imdb-8k/imdb/train.tsv \
        runs/imdb-4k-seed0/imdb/train.tsv runs/imdb-4k-more/imdb/train.tsv \
        --labels negative,positive
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from models.backbone import Backbone
from train.data import read_examples
from train.features import CachedSplit, cache_key, load_cache

CHUNK_TOKENS = 65536  # tokens copied at a time: RAM stays flat however big the parts


class CacheConcatError(ValueError):
    """The parts do not make up the file, or a part has no cache yet."""


def concat_caches(
    backbone: Backbone,
    out_file: str | Path,
    parts: Sequence[str | Path],
    labels: Sequence[str],
    cache_dir: str | Path,
    overlap: int = 64,
    fmt: str = "auto",
) -> CachedSplit:
    """Write (or reuse) ``out_file``'s cache from the cached ``parts`` it is made of, in order.

    Raises :class:`CacheConcatError` when ``out_file``'s examples are not exactly the parts'
    examples one after the other, or when a part was never cached with these labels and
    this overlap (train on it once, or run :func:`train.features.build_cache`)."""
    whole = read_examples(out_file, fmt)
    pieces = [read_examples(p, fmt) for p in parts]
    if whole != [e for piece in pieces for e in piece]:
        raise CacheConcatError(
            f"{out_file} is not the concatenation of {', '.join(map(str, parts))}"
        )
    folder = Path(cache_dir) / cache_key(backbone, whole, labels, overlap)
    if (folder / "meta.json").is_file():
        return load_cache(folder)
    part_folders = [Path(cache_dir) / cache_key(backbone, e, labels, overlap) for e in pieces]
    for path, pf in zip(parts, part_folders, strict=True):
        if not (pf / "meta.json").is_file():
            raise CacheConcatError(f"{path} has no cache under {cache_dir} for these labels")
    splits = [load_cache(pf) for pf in part_folders]
    metas = [json.loads((pf / "meta.json").read_text()) for pf in part_folders]
    _write(folder, splits, metas, part_folders)
    return load_cache(folder)


def _write(
    folder: Path, splits: list[CachedSplit], metas: list[dict[str, object]], parts: list[Path]
) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    total = sum(len(s.states) for s in splits)
    shape = (total, *splits[0].states.shape[1:])
    tmp = folder / "states.tmp.npy"
    states = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float16, shape=shape)
    tokens = texts = 0
    offsets, win_text = [], []
    for s in splits:
        for a in range(0, len(s.states), CHUNK_TOKENS):
            b = min(a + CHUNK_TOKENS, len(s.states))
            states[tokens + a : tokens + b] = s.states[a:b]
        offsets.append(s.win_offset + tokens)
        win_text.append(s.win_text + texts)
        tokens += len(s.states)
        texts += s.num_examples
    states.flush()
    del states
    tmp.rename(folder / "states.npy")
    np.savez(
        folder / "index.npz",
        win_offset=np.concatenate(offsets),
        win_length=np.concatenate([s.win_length for s in splits]),
        win_text=np.concatenate(win_text),
        own=np.concatenate([s.own for s in splits]),
        labels=np.concatenate([s.labels for s in splits]),
        token_labels=np.concatenate([s.token_labels for s in splits]),
    )
    seconds = sum(float(str(m["seconds"])) for m in metas)
    meta = {
        **metas[0],
        "num_examples": texts,
        "num_windows": sum(s.num_windows for s in splits),
        "tokens": total,
        "seconds": seconds,
        "examples_per_second": texts / max(seconds, 1e-9),
        "tokens_per_second": total / max(seconds, 1e-9),
        "assembled_from": [p.name for p in parts],
    }
    (folder / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")


def main(argv: Sequence[str] | None = None) -> int:
    import torch

    from models.defaults import open_backbone

    ap = argparse.ArgumentParser(prog="python -m train.cache_concat", description=__doc__)
    ap.add_argument("parts", nargs="+", help="the cached files OUT is made of, in order")
    ap.add_argument("--out", required=True, help="the concatenated data file")
    ap.add_argument("--labels", required=True, help="comma-separated, as the runs pass them")
    ap.add_argument("--cache-dir", default="cache/features")
    ap.add_argument("--overlap", type=int, default=64)
    ap.add_argument("--backbone", default=None)
    args = ap.parse_args(argv)
    backbone = open_backbone(args.backbone, torch.device("cpu"))
    labels = args.labels.split(",")
    try:
        split = concat_caches(backbone, args.out, args.parts, labels, args.cache_dir, args.overlap)
    except CacheConcatError as exc:
        ap.error(str(exc))
    print(f"{args.out}: {split.num_examples} texts, {split.num_windows} windows cached")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
