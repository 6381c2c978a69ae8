"""Every knob of one training run; recorded verbatim in the head's manifest."""

from __future__ import annotations

from dataclasses import MISSING, asdict, dataclass, field, fields
from typing import Any


@dataclass
class TrainConfig:
    task: str
    kind: str  # "sequence" | "token"
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
    case_dropout: float = 0.0  # share of training windows shown with lower-cased case ids
    case_upper: float = 0.0  # share of training windows shown with upper-cased case ids
    select_case: str = "as-is"  # as-is | all: token heads select on the mean of case views
    val_fraction: float = 0.1  # share of each training file held out for selection (0: dev)
    val_seed: int = 0  # seeds which blocks are held out (the same for every training seed)
    val_block: int = 50  # consecutive texts per held-out block
    calibrate: bool = True  # fit the temperature on the validation split
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
    metric: str | None = None  # accuracy | mcc | f1; default accuracy / f1 by kind
    overlap: int = 64
    cache_dir: str = "cache/features"
    slice_size: int = 200
    resume: bool = False
    threads: int = 2
    version: str = "1"
    description: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def selection_metric(self) -> str:
        return self.metric or ("f1" if self.kind == "token" else "accuracy")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def config_defaults() -> dict[str, Any]:
    """Every knob's default: `sidetask train` takes its flag defaults from here."""
    return {f.name: f.default for f in fields(TrainConfig) if f.default is not MISSING}
