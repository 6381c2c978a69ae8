"""Markdown rows from trained head folders: `python -m train.report runs/cola-*`.

Used to fill docs/quality.md from the manifests, so the table shows recorded numbers only.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from heads.io import read_manifest

BACKBONE_PARAMS = 22_713_216  # all-MiniLM-L6-v2 (sentence-transformers), embeddings included


def row(folder: str | Path) -> str:
    m = read_manifest(folder)
    t = m.training
    dev = {k: v for k, v in m.metrics.items() if not any(c.isdigit() for c in k.split("_")[-2])}
    shown = ", ".join(
        f"{k} {v:.4f}"
        for k, v in sorted(dev.items())
        if k.endswith(("_accuracy", "_mcc", "_f1")) and "200_" not in k
    )
    params = int(t.get("parameters", 0))
    return (
        f"| {folder} | {m.mixing} | {shown} | {params:,} ({100 * params / BACKBONE_PARAMS:.2f} %) "
        f"| {t.get('train_seconds', 0):.0f} s + cache {t.get('cache_seconds', 0):.0f} s "
        f"| {t.get('machine', '')} |"
    )


def main(argv: Sequence[str] | None = None) -> int:
    folders = list(argv if argv is not None else sys.argv[1:])
    print("| run | mixing | dev metrics | parameters (% backbone) | time | machine |")
    print("|---|---|---|---|---|---|")
    for folder in folders:
        if (Path(folder) / "manifest.json").is_file():
            print(row(folder))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
