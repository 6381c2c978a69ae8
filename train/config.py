"""Every knob of one training run; recorded verbatim in the head's manifest.

A config checks itself when it is built: a combination that cannot work raises
:class:`ConfigError` naming the flag to fix, before any model or data is loaded.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import MISSING, asdict, dataclass, field, fields
from typing import Any


class ConfigError(ValueError):
    """A training setting (or its clash with the data) that cannot work; the message names
    the flag to fix. ``sidetask train`` prints it as a usage error (exit status 2)."""


@dataclass(frozen=True)
class TrainConfig:
    task: str
    kind: str  # a head kind (heads/kinds/): sequence | token | multilabel
    train: list[str]
    dev: list[str]
    out: str
    format: str = "auto"
    labels: list[str] | None = None
    backbone: str | None = None
    k: int = 64
    alpha: float = 64.0
    cutoff: float = 0.0
    entropy: float = 0.0  # lambda: weight of H(w_t) added to the loss
    positions: bool = False
    mixing: str = "adaptive"
    num_attention_heads: int = 4
    ff_dim: int = 2048
    dropout: float = 0.1
    pooling: str = "mean"  # sequence heads: mean | max over the attended tokens
    block: str = "attention"  # sequence heads: attention | encoder (with feed-forward ff_dim)
    case_features: bool = False  # token heads: learned embedding of each token's casing class
    threshold: float = 0.5  # multilabel heads: a label is answered when its score reaches it
    case_dropout: float = 0.0  # share of training windows shown with lower-cased case ids
    case_upper: float = 0.0  # share of training windows shown with upper-cased case ids
    select_case: str = "as-is"  # as-is | all: token heads select on the mean of case views
    val_fraction: float = 0.1  # share of each training file held out for selection (0: dev)
    val_seed: int = 0  # seeds which blocks are held out (the same for every training seed)
    val_block: int = 50  # consecutive texts per held-out block
    calibrate: bool = True  # fit the temperature on the validation split
    refit: bool = False  # then train again on train + validation for the budget chosen on it
    refit_epochs: int = 0  # with refit: that many passes instead of the selection's kept point
    lr: float = 1e-3
    weight_decay: float = 0.01
    label_smoothing: float = 0.0  # share of each target spread evenly over all labels
    ema: float = 0.0  # decay of the moving average of the weights that is evaluated (0: off)
    batch_tokens: int = 4096
    epochs: int = 5
    patience: int = 2
    lr_patience: int = 0  # evaluations without improvement before the learning rate halves
    evals_per_epoch: int = 1
    seed: int = 0
    max_examples: list[int] | None = None  # per training file (one value: every file)
    train_weights: list[float] | None = None  # loss weight per training file (default: all 1)
    class_weights: list[str] | None = None  # "balanced" or one loss weight per label
    metric: str | None = None  # accuracy | mcc | f1 | macro_f1; default by kind
    overlap: int = 64
    cache_dir: str = "cache/features"
    slice_size: int = 200
    resume: bool = False
    threads: int = 2
    version: str = "1"
    description: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for broken, message in (*_head_rules(self), *_case_rules(self), *_data_rules(self)):
            if broken:
                raise ConfigError(message)

    @property
    def selection_metric(self) -> str:
        from train.kinds import train_kind  # the kinds' training halves import this module

        return self.metric or train_kind(self.kind).default_metric

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def config_defaults() -> dict[str, Any]:
    """Every knob's default: `sidetask train` takes its flag defaults from here."""
    return {f.name: f.default for f in fields(TrainConfig) if f.default is not MISSING}


Rule = tuple[bool, str]  # (broken, what to fix)


def _kind_rules(c: TrainConfig) -> list[Rule]:
    """A known kind, and options of other kinds left at their defaults (as the manifest
    checks: ``heads/kinds/``), and a selection metric the kind scores. Imported here:
    train.config itself stays importable without torch (the parsers read its defaults)."""
    from heads.kinds import KIND_OPTIONS, KINDS, kinds_accepting

    if c.kind not in KINDS:
        return [(True, f"--kind takes one of {', '.join(KINDS)}, got {c.kind!r}")]
    rules = []
    for option, default in KIND_OPTIONS.items():
        owners = " or ".join(kinds_accepting(option))
        flag = "--" + option.replace("_", "-")
        broken = getattr(c, option) != default and option not in KINDS[c.kind].options
        rules.append((broken, f"{flag} is for {owners} heads (--kind {owners}) only"))
    from train.kinds import train_kind  # the kinds' training halves import this module

    metrics = train_kind(c.kind).metrics
    wrong = c.metric is not None and c.metric not in metrics
    rules.append((wrong, f"--metric {c.metric} is not a {c.kind} metric: {', '.join(metrics)}"))
    return rules


def _head_rules(c: TrainConfig) -> list[Rule]:
    """The head's shape and its optimisation."""
    return [
        *_kind_rules(c),
        (not 0 < c.threshold < 1, f"--threshold takes a score in (0, 1), got {c.threshold}"),
        (
            not 0 <= c.label_smoothing < 1,
            f"--label-smoothing takes a share in [0, 1), got {c.label_smoothing}",
        ),
        (c.lr_patience < 0, f"--lr-patience takes a count >= 0, got {c.lr_patience}"),
        (
            c.ema != 0 and not 0 < c.ema < 1,
            f"--ema takes a decay in (0, 1), e.g. 0.99; got {c.ema}",
        ),
    ]


def _case_rules(c: TrainConfig) -> list[Rule]:
    """Casing features and the case views they are trained and selected on."""
    return [
        (
            bool(c.case_dropout) and not (c.case_features and 0 < c.case_dropout < 1),
            "--case-dropout takes a share in (0, 1) and needs --case-features",
        ),
        (
            bool(c.case_upper) and not (c.case_features and 0 < c.case_dropout + c.case_upper < 1),
            "--case-upper takes a share in (0, 1 - case dropout), needs --case-features",
        ),
        (
            c.select_case not in ("as-is", "all"),
            f"--select-case takes as-is or all, got {c.select_case!r}",
        ),
        (
            c.select_case == "all" and not c.case_features,
            "--select-case all is for token heads with --case-features",
        ),
    ]


def _data_rules(c: TrainConfig) -> list[Rule]:
    """Per-file options, per-label weights and the validation split."""
    files, weights = len(c.train), c.train_weights
    class_weights = class_weights_problem(c.class_weights, c.labels)
    return [
        (
            c.max_examples is not None and len(c.max_examples) not in (1, files),
            "--max-examples takes one value or one per training file",
        ),
        (
            weights is not None and len(weights) != files,
            "--train-weights takes one weight per training file",
        ),
        (
            weights is not None and any(not w > 0 for w in weights),
            "--train-weights must be positive",
        ),
        (
            not 0 <= c.val_fraction < 0.5,
            f"--val-fraction takes a share in [0, 0.5), got {c.val_fraction}",
        ),
        (class_weights is not None, class_weights or ""),
        (
            c.refit and c.val_fraction == 0,
            "--refit needs a validation split to choose the budget on (--val-fraction > 0)",
        ),
        (c.refit and c.resume, "--refit cannot --resume: run it again from the start"),
        (
            c.refit_epochs != 0 and not (c.refit and 0 < c.refit_epochs <= c.epochs),
            f"--refit-epochs takes a count in 1..--epochs ({c.epochs}) and needs --refit",
        ),
    ]


def class_weights_problem(spec: Sequence[str] | None, labels: Sequence[str] | None) -> str | None:
    """What is wrong with ``--class-weights`` (None: nothing). The config checks the count
    when ``--labels`` is given; :func:`train.class_weights.class_weights` once the labels are
    read from the data."""
    if not spec or list(spec) == ["balanced"]:
        return None
    try:
        values = [float(v) for v in spec]
    except ValueError:
        return f"--class-weights takes 'balanced' or one number per label, got {' '.join(spec)}"
    if labels and len(values) != len(labels):
        return (
            f"--class-weights takes one weight per label ({len(labels)}: {', '.join(labels)}), "
            f"got {len(values)}"
        )
    if any(not v > 0 for v in values):
        # a zero weight would make a batch holding only that label a 0/0 (NaN) loss
        return "--class-weights must be positive"
    return None
