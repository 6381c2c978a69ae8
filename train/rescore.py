"""Score a saved head from cached states: case views and both NER decodings, in seconds.

`python -m train.rescore --head heads/pretrained/ner --data ../shared/data/conll2003/dev.txt`
prints the metric; for sequence heads also the ECE of the scores the head gives (with its
manifest's temperature); for token heads the metric on the as-is, lower-cased and
upper-cased views, with the engine's per-word argmax decoding and with the BIO-constrained
Viterbi decoding (``heads.postprocess.token_entities``). The cached path computes what the
engine computes (``tests/train/test_loop.py``); ``sidetask eval --case all`` is the
engine's own number for argmax decoding.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m train.rescore", description=__doc__)
    p.add_argument("--head", required=True, help="head folder")
    p.add_argument("--data", required=True, help="data file (its states are cached once)")
    p.add_argument("--cache-dir", default="cache/features", help="feature cache folder")
    p.add_argument("--threads", type=int, default=1, help="CPU threads for torch")
    p.add_argument("--json", default=None, help="write the metrics as JSON here")
    p.add_argument(
        "--metric", default=None, help="accuracy | mcc | f1 | macro_f1 (default: by kind)"
    )
    args = p.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    from heads.io import load_head
    from models.defaults import open_backbone
    from train.config import TrainConfig
    from train.data import read_examples
    from train.features import build_cache, with_case_ids
    from train.kinds import train_kind
    from train.loop import dataset_name
    from train.protocol import EvalSet, case_views, evaluate_sets

    torch.set_num_threads(args.threads)
    device = torch.device("cpu")
    backbone = open_backbone(None, device)
    head = load_head(args.head, backbone.info)
    kind = train_kind(head.kind)
    cfg = TrainConfig(
        task=head.name, kind=kind.name, train=[], dev=[args.data], out="", metric=args.metric
    )
    examples = read_examples(args.data)
    split = build_cache(backbone, examples, head.labels, args.cache_dir, cfg.overlap)
    if head.case_features:
        info = backbone.info
        split = with_case_ids(split, examples, backbone.tokenizer, info.max_length, cfg.overlap)
    sets = [EvalSet(dataset_name(args.data), examples, split)]
    if kind.constrained_decoding:  # token heads: every case view, both decodings
        sets = case_views(sets, backbone, cfg)
    metric = cfg.selection_metric
    out: dict[str, float] = {}
    for constrained in (False, True) if kind.constrained_decoding else (False,):
        results = evaluate_sets(head, sets, backbone, cfg, device, constrained)
        decoding = "viterbi" if constrained else "argmax"
        for s in sets:
            out[f"{s.name}_{decoding}_{metric}"] = float(results[s.name][metric])
        out[f"mean_{decoding}_{metric}"] = float(results["selection"])
    if kind.by_text:  # per-text kinds: calibration of the scores (multi-label: per label)
        from train.calibration import ece

        logits, gold = kind.calibration_data(head, split, examples, device)
        out[f"{sets[0].name}_ece"] = ece(torch.softmax(logits, -1).numpy(), gold)
    for key, value in out.items():
        print(f"{key}\t{value:.4f}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"head": args.head, "data": args.data, **out}, fh, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
