"""Two heads for one task behind a length rule, the rule chosen on the validation split.

One sentiment head trades short sentences (SST-2) against long reviews (IMDB); a head
trained for short text and one for long text can each do better on their own kind. The
rule that joins them: texts of at most N tokens go to the short head, longer ones to the
long head. N is the value with the best mean accuracy over the long run's validation sets
(the middle of the best range, where several tie); dev is then scored once with it.

    python -m train.route --short runs/p-sent-sst-s0 --long runs/p-sent8k-w0.1-s0
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import torch

from heads.io import load_head, read_manifest
from models.windows import encode_texts
from train.config import TrainConfig
from train.data import TextExample, label_index
from train.evaluate import predict_cached
from train.protocol import EvalSet


@dataclass
class Routed:
    """One set's texts: token counts and whether each head answers each text right."""

    name: str
    lengths: list[int]
    short_ok: list[bool]
    long_ok: list[bool]

    def accuracy(self, n: float) -> float:
        """Accuracy when texts of at most ``n`` tokens go to the short head."""
        hits = [
            s if k <= n else g
            for k, s, g in zip(self.lengths, self.short_ok, self.long_ok, strict=True)
        ]
        return sum(hits) / len(hits)


def pick_threshold(sets: Sequence[Routed]) -> float:
    """N with the best mean accuracy over ``sets`` (0: every text to the long head).

    Only the text lengths can change the result, so the candidates are 0 and each length;
    of the best range of consecutive candidates, its middle, so that texts a little longer
    than any short validation text still reach the short head."""
    candidates = sorted({0, *(k for s in sets for k in s.lengths)})
    means = [sum(s.accuracy(n) for s in sets) / len(sets) for n in candidates]
    best = max(means)
    first = means.index(best)
    last = first
    while last + 1 < len(means) and means[last + 1] == best:
        last += 1
    if last + 1 < len(candidates):  # the range ends just below the next candidate
        return (candidates[first] + candidates[last + 1] - 1) / 2
    return float(candidates[last])


def routed_sets(
    short: Any, long: Any, sets: Sequence[EvalSet], cfg: TrainConfig, tokenizer: Any, length: int
) -> list[Routed]:
    """Both heads' per-text correctness and each text's token count, per set."""
    out = []
    for s in sets:
        gold = [label_index(long.labels, e.label) for e in s.examples if isinstance(e, TextExample)]
        right = []
        for head in (short, long):
            preds = predict_cached(head, s.split, s.examples, tokenizer, length, cfg.overlap)
            right.append([p == y for p, y in zip(preds, gold, strict=True)])
        enc = encode_texts(tokenizer, [e.text for e in s.examples])
        out.append(Routed(s.name, [len(e.ids) for e in enc], right[0], right[1]))
    return out


def run_config(run: str | Path) -> TrainConfig:
    """The training config a run recorded (its files, split and protocol settings)."""
    recorded = read_manifest(run).training["config"]
    names = {f.name for f in fields(TrainConfig)}
    return TrainConfig(**{k: v for k, v in recorded.items() if k in names}, out=str(run))


def main(argv: Sequence[str] | None = None) -> int:
    from models.defaults import open_backbone
    from train.prepare import prepare_data

    ap = argparse.ArgumentParser(prog="python -m train.route", description=__doc__)
    ap.add_argument("--short", required=True, help="run folder of the short-text head")
    ap.add_argument("--long", required=True, help="run folder of the long-text head")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", default=None, help="also write the result here")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    cfg = run_config(args.long)
    device = torch.device("cpu")
    data = prepare_data(cfg, open_backbone(cfg.backbone, device), device)
    tok, length = data.backbone.tokenizer, data.backbone.info.max_length
    short, long = load_head(args.short).eval(), load_head(args.long).eval()
    vals = routed_sets(short, long, data.vals, cfg, tok, length)
    n = pick_threshold(vals)
    devs = routed_sets(short, long, data.devs, cfg, tok, length)
    result = {
        "short": str(args.short),
        "long": str(args.long),
        "threshold_tokens": n,
        "chosen_on": [v.name for v in vals],
        "val": {v.name: v.accuracy(n) for v in vals},
        "dev": {d.name: d.accuracy(n) for d in devs},
        "dev_short_only": {d.name: d.accuracy(float("inf")) for d in devs},
        "dev_long_only": {d.name: d.accuracy(-1) for d in devs},
        "dev_routed_to_short": {d.name: sum(k <= n for k in d.lengths) for d in devs},
    }
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        Path(args.json).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
