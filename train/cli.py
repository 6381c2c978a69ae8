"""`sidetask train` and `sidetask eval`: argument parsers and their entry points.

Heavy imports (torch, transformers) happen inside the commands, not at parser build time.
A setting that cannot work (:class:`train.config.ConfigError`, raised when the config is
built or when it meets the data) and a malformed data file (:class:`train.data.DataError`)
end the command like an argparse error: ``sidetask train: error: ...``, exit status 2.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from train.config import ConfigError, config_defaults
from train.data import CASE_VIEWS, FORMATS, DataError

USAGE_ERROR = 2  # argparse's exit status for a bad command line


class DefaultsHelp(argparse.ArgumentDefaultsHelpFormatter):
    """Shows each flag's default, unless it has none or its help already says it."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        if action.default is None or "default" in text:
            return text
        return super()._get_help_string(action)


def add_train_parser(sub: Any) -> None:
    from heads.kinds import KINDS  # the kinds' names and summaries for --kind

    p = sub.add_parser(
        "train",
        help="Train one head on a frozen backbone.",
        formatter_class=DefaultsHelp,
    )
    p.add_argument("--task", required=True, help="head (task) name, e.g. sentiment")
    p.add_argument(
        "--kind",
        required=True,
        choices=list(KINDS),
        help="; ".join(f"{name}: {kind.summary}" for name, kind in KINDS.items()),
    )
    p.add_argument("--train", required=True, nargs="+", help="training file(s)")
    p.add_argument(
        "--dev",
        required=True,
        nargs="+",
        help="dev file(s), scored once after training and recorded (with --val-fraction 0 they "
        "also select, averaged)",
    )
    p.add_argument("--out", required=True, help="folder for the head, log, plots, checkpoint")
    p.add_argument("--format", choices=FORMATS, help="data format (auto: from the file name)")
    p.add_argument("--labels", help="comma-separated label names (index order)")
    p.add_argument("--backbone", help="local checkpoint folder (default: packaged)")
    p.add_argument("--k", type=int, help="projection size k")
    p.add_argument("--alpha", type=float, help="softmax temperature of w_t")
    p.add_argument("--cutoff", type=float, help="tau: layer weights below are 0")
    p.add_argument("--entropy", type=float, help="lambda: weight of H(w_t)")
    p.add_argument(
        "--positions",
        action=argparse.BooleanOptionalAction,
        help="add learned positional embeddings to F_t",
    )
    p.add_argument(
        "--mixing",
        choices=["adaptive", "last", "uniform"],
        help="layer mixing: learned w_t (the method), or the last-layer / uniform baselines",
    )
    p.add_argument(
        "--ff-dim",
        type=int,
        help="feed-forward size of token heads and of --block encoder sequence heads",
    )
    p.add_argument("--dropout", type=float, help="dropout inside the head")
    p.add_argument(
        "--pooling",
        choices=["mean", "max"],
        help="sequence and multilabel heads: mean or max of the attended token features over "
        "the text",
    )
    p.add_argument(
        "--block",
        choices=["attention", "encoder"],
        help="sequence and multilabel heads: the layer over F_t before pooling, one "
        "self-attention layer (the method's) or a pre-norm transformer encoder layer with a "
        "--ff-dim feed-forward",
    )
    p.add_argument(
        "--threshold",
        type=float,
        help="multilabel heads: a label is in the answer when its score reaches this (stored "
        "in the manifest; every label's score is answered too)",
    )
    p.add_argument(
        "--case-features",
        action=argparse.BooleanOptionalAction,
        help="token heads: add a learned embedding of each token's casing class (original text)",
    )
    p.add_argument(
        "--case-dropout",
        type=float,
        help="with --case-features: share of training windows shown as if lower-cased",
    )
    p.add_argument(
        "--case-upper",
        type=float,
        help="with --case-features: share of training windows shown as if upper-cased "
        "(headlines, shouting)",
    )
    p.add_argument(
        "--select-case",
        choices=["as-is", "all"],
        help="token heads with case features: select on the validation split as is (as-is) "
        "or on the mean of its as-is, lower-cased and upper-cased views (all)",
    )
    p.add_argument(
        "--val-fraction",
        type=float,
        help="share of each training file held out as the validation split that every choice "
        "(early stopping, checkpoint, temperature) is made on; dev is scored once at the end. "
        "0: select on dev (legacy; optimistic dev numbers)",
    )
    p.add_argument(
        "--val-seed",
        type=int,
        help="seeds which blocks of the training file are held out (independent of --seed, so "
        "all seeds of a setting share one validation split)",
    )
    p.add_argument("--val-block", type=int, help="consecutive texts per held-out block")
    p.add_argument(
        "--calibrate",
        action=argparse.BooleanOptionalAction,
        help="fit the temperature of the head's scores on the validation split",
    )
    p.add_argument(
        "--refit",
        action=argparse.BooleanOptionalAction,
        help="after selecting on the validation split, train a new head on every training "
        "text (validation included) for the passes and learning rates the selection chose, "
        "no early stopping; it takes the selection head's temperature and is the one saved "
        "in OUT (the selection run in OUT/selection)",
    )
    p.add_argument(
        "--refit-epochs",
        type=int,
        help="with --refit: train that many epochs instead of up to the selection run's kept "
        "evaluation (a budget chosen on validation curves, e.g. their seed mean's peak; 0: the "
        "kept evaluation)",
    )
    p.add_argument("--lr", type=float, help="AdamW learning rate")
    p.add_argument("--weight-decay", type=float, help="AdamW weight decay")
    p.add_argument(
        "--label-smoothing",
        type=float,
        help="share of each training target spread evenly over all labels (0: one-hot)",
    )
    p.add_argument(
        "--ema",
        type=float,
        metavar="DECAY",
        help="evaluate, keep and ship an exponential moving average of the weights with this "
        "decay per step, e.g. 0.99 (default 0: the weights themselves)",
    )
    p.add_argument("--batch-tokens", type=int, help="padded tokens per batch")
    p.add_argument("--epochs", type=int, help="most passes over the training data")
    p.add_argument("--patience", type=int, help="evaluations without improvement")
    p.add_argument(
        "--lr-patience",
        type=int,
        help="evaluations without improvement before ReduceLROnPlateau halves the learning rate",
    )
    p.add_argument(
        "--evals-per-epoch", type=int, help="dev evaluations (and checkpoints) per epoch"
    )
    p.add_argument("--seed", type=int, help="seeds initialisation, batches, subsets")
    p.add_argument(
        "--max-examples",
        type=int,
        nargs="+",
        help="seeded random subset: one cap for every training file, or one per file",
    )
    p.add_argument(
        "--train-weights",
        type=float,
        nargs="+",
        help="loss weight of each training file's batches (one per file; default all 1): "
        "rebalances files whose batches hold very different numbers of examples",
    )
    p.add_argument(
        "--class-weights",
        nargs="+",
        metavar="W",
        help="loss weight per label: 'balanced' (inverse frequency in the training data) or "
        "one number per label in label order (default: unweighted)",
    )
    p.add_argument(
        "--metric",
        choices=["accuracy", "mcc", "f1", "macro_f1"],
        help="metric that selects the best head (default by kind: accuracy for sequence, entity "
        "f1 for token, micro f1 for multilabel heads; mcc: sequence only; macro_f1: multilabel)",
    )
    p.add_argument("--overlap", type=int, help="window overlap (as the engine)")
    p.add_argument("--cache-dir", help="where cached backbone states are kept")
    p.add_argument(
        "--slice",
        dest="slice_size",
        type=int,
        help="engine-scored dev slice (0: skip)",
    )
    p.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint")
    p.add_argument("--threads", type=int, help="CPU threads for torch")
    p.add_argument("--version", help="head version written to the manifest")
    p.add_argument("--description", help="free text written to the manifest")
    # the defaults are TrainConfig's, so the two cannot drift apart
    p.set_defaults(func=run_train, **config_defaults())


def add_eval_parser(sub: Any) -> None:
    p = sub.add_parser(
        "eval",
        help="Evaluate a trained head on a data file.",
        formatter_class=DefaultsHelp,
    )
    p.add_argument("--head", required=True, help="head folder (manifest.json + safetensors)")
    p.add_argument("--data", required=True, help="data file")
    p.add_argument(
        "--format", default="auto", choices=FORMATS, help="data format (auto: from the file name)"
    )
    p.add_argument("--backbone", default=None, help="local checkpoint folder (default: packaged)")
    p.add_argument("--max-examples", type=int, default=None, help="first N examples only")
    p.add_argument("--overlap", type=int, default=64, help="window overlap in tokens")
    p.add_argument("--threads", type=int, default=2, help="CPU threads for torch")
    p.add_argument("--json", default=None, help="write the metrics as JSON here")
    p.add_argument(
        "--case",
        default="as-is",
        choices=[*CASE_VIEWS, "all"],
        help="score the data as is, lower-cased, upper-cased, or all three (with their mean)",
    )
    p.set_defaults(func=run_eval)


def usage_error(command: str, exc: Exception) -> int:
    """Report ``exc`` as argparse reports a bad flag; the exit status for ``main``."""
    print(f"sidetask {command}: error: {exc}", file=sys.stderr)
    return USAGE_ERROR


def run_train(args: argparse.Namespace) -> int:
    try:
        return _train(args)
    except (ConfigError, DataError) as exc:
        return usage_error("train", exc)


def run_eval(args: argparse.Namespace) -> int:
    try:
        return _eval(args)
    except (ConfigError, DataError) as exc:
        return usage_error("eval", exc)


def _train(args: argparse.Namespace) -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from models.defaults import open_backbone
    from train.config import TrainConfig
    from train.engine_eval import record_slice_metrics
    from train.loop import dataset_name, train

    fields = {k: v for k, v in vars(args).items() if k in TrainConfig.__dataclass_fields__}
    fields["labels"] = args.labels.split(",") if args.labels else None
    cfg = TrainConfig(**fields)  # refuses a bad combination of flags (ConfigError)
    best = train(cfg)
    if not best:
        print("no evaluation ran; nothing saved")
        return 1
    if cfg.slice_size > 0:
        import torch

        backbone = open_backbone(cfg.backbone, torch.device("cpu"))
        rec = record_slice_metrics(
            cfg.out,
            [(dataset_name(p), p) for p in cfg.dev],
            backbone,
            cfg.slice_size,
            cfg.format,
            cfg.overlap,
        )
        print("engine-scored dev slice:", rec)
    split = "validation" if cfg.val_fraction > 0 else "dev"
    print(f"best {split} {cfg.selection_metric}: {best['selection']:.4f}; head saved in {cfg.out}")
    kept = "the refit head" if cfg.refit else "the kept head"
    for name, result in best.get("dev", {}).items():
        if isinstance(result, dict) and cfg.selection_metric in result:
            print(f"dev (scored once, with {kept}) {name}: {result[cfg.selection_metric]:.4f}")
    return 0


def _eval(args: argparse.Namespace) -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    from models.defaults import open_backbone
    from train.data import read_examples
    from train.engine_eval import evaluate_views, write_json
    from train.metrics import format_table

    torch.set_num_threads(args.threads)
    backbone = open_backbone(
        args.backbone, torch.device("cuda" if torch.cuda.is_available() else "cpu")
    )
    examples = read_examples(args.data, args.format)
    if args.max_examples is not None:
        examples = examples[: args.max_examples]
    views = list(CASE_VIEWS) if args.case == "all" else [args.case]
    result = evaluate_views(args.head, examples, backbone, views, args.overlap)
    for view in views:
        if len(views) > 1:
            print(f"== {view}")
        print(format_table(result["views"][view]))
    if len(views) > 1:
        print(f"mean over views: {result['metric']} {result['mean']:.4f}")
    if args.json:
        single = result["views"][views[0]] if len(views) == 1 else {}
        write_json(args.json, {"head": args.head, "data": args.data, **single, **result})
    return 0
