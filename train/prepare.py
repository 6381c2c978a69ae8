"""Step 1 of a training run (``train/loop.py``): the data. Read the files, cache the
backbone's states, add casing ids, carve the validation split, weigh files and classes.

Everything here runs before the head is built, in a fixed order, so a seed gives the same
subsets, splits and caches every time.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import torch

from models.backbone import Backbone
from train.batches import windows_by_text
from train.class_weights import class_weights
from train.config import ConfigError, TrainConfig
from train.data import Example, example_kind, read_examples
from train.features import CachedSplit, build_cache, with_case_ids, with_upper_case_ids
from train.kinds import train_kind
from train.objective import file_weights
from train.protocol import EvalSet, carve_validation, case_views


@dataclass
class Prepared:
    """What the epochs and the evaluations read, all of it ready before the first step."""

    backbone: Backbone
    device: torch.device
    labels: list[str]
    splits: list[CachedSplit]  # per training file, its validation windows carved out
    groups: list[list[list[int]] | None]  # sequence heads: the windows of each text
    weights: list[float]  # loss weight per training file
    class_weight: torch.Tensor | None  # loss weight per label (None: unweighted)
    vals: list[EvalSet]  # validation split per training file (empty: select on dev)
    devs: list[EvalSet]  # scored once at the end
    selection_sets: list[EvalSet]  # what every evaluation while training scores
    held_out: list[dict[str, object]]  # what was carved, for the manifest
    cache_seconds: float


def dataset_name(path: str) -> str:
    """``../data/sst2/dev.tsv`` -> ``sst2_dev``: the prefix of this file's metrics."""
    p = Path(path)
    stem = p.name.split(".")[0]
    return f"{p.parent.name}_{stem}".replace("-", "_").lower() if p.parent.name else stem


def prepare_data(cfg: TrainConfig, backbone: Backbone, device: torch.device) -> Prepared:
    """Every split of the run, cached and carved; raises :class:`ConfigError` when the data
    contradicts the config (another kind, a class weight per missing label)."""
    train_sets = read_training_sets(cfg)
    labels = resolve_labels(cfg, [e for ex in train_sets for e in ex])
    started = time.perf_counter()
    splits = [
        cached(cfg, backbone, p, ex, labels) for p, ex in zip(cfg.train, train_sets, strict=True)
    ]
    devs = [dev_set(cfg, backbone, p, labels) for p in cfg.dev]
    if cfg.case_features:
        splits = with_casing(cfg, backbone, train_sets, splits, devs)
    names = [dataset_name(p) for p in cfg.train]
    train_sets, splits, vals, held_out = carve_validation(cfg, names, train_sets, splits)
    selection_sets = vals or devs
    if cfg.select_case == "all":
        selection_sets = case_views(selection_sets, backbone, cfg)
    class_weight = class_weights(cfg.class_weights, [e for ex in train_sets for e in ex], labels)
    return Prepared(
        backbone=backbone,
        device=device,
        labels=labels,
        splits=splits,
        groups=[windows_by_text(s) if train_kind(cfg.kind).by_text else None for s in splits],
        weights=file_weights(cfg),
        class_weight=None if class_weight is None else class_weight.to(device),
        vals=vals,
        devs=devs,
        selection_sets=selection_sets,
        held_out=held_out,
        cache_seconds=time.perf_counter() - started,
    )


def read_training_sets(cfg: TrainConfig) -> list[list[Example]]:
    """Each training file's examples (a seeded subset under ``--max-examples``)."""
    caps: list[int | None] = [*cfg.max_examples] if cfg.max_examples else [None]
    caps = caps * len(cfg.train) if len(caps) == 1 else caps
    sets = [
        read_examples(p, cfg.format, cap, cfg.seed) for p, cap in zip(cfg.train, caps, strict=True)
    ]
    if any(example_kind(ex) != cfg.kind for ex in sets):
        raise ConfigError(f"--kind {cfg.kind} does not match the training data")
    if cfg.class_weights:
        try:
            train_kind(cfg.kind).check_class_weights()
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
    return sets


def resolve_labels(cfg: TrainConfig, examples: list[Example]) -> list[str]:
    """``--labels``, else the label set the kind reads from the training examples."""
    return list(cfg.labels) if cfg.labels else train_kind(cfg.kind).labels_of(examples)


def cached(
    cfg: TrainConfig, backbone: Backbone, path: str, examples: list[Example], labels: list[str]
) -> CachedSplit:
    """The backbone's states for one file (read from ``--cache-dir`` when computed before)."""
    desc = f"cache {dataset_name(path)}"
    return build_cache(backbone, examples, labels, cfg.cache_dir, cfg.overlap, desc=desc)


def dev_set(cfg: TrainConfig, backbone: Backbone, path: str, labels: list[str]) -> EvalSet:
    examples = read_examples(path, cfg.format)
    return EvalSet(dataset_name(path), examples, cached(cfg, backbone, path, examples, labels))


def with_casing(
    cfg: TrainConfig,
    backbone: Backbone,
    train_sets: list[list[Example]],
    splits: list[CachedSplit],
    devs: list[EvalSet],
) -> list[CachedSplit]:
    """The training splits with case ids (and upper-cased ones for ``--case-upper``); the
    dev sets get their case ids in place."""
    tok, length = backbone.tokenizer, backbone.info.max_length
    splits = [
        with_case_ids(s, ex, tok, length, cfg.overlap)
        for s, ex in zip(splits, train_sets, strict=True)
    ]
    for dev in devs:
        dev.split = with_case_ids(dev.split, dev.examples, tok, length, cfg.overlap)
    if cfg.case_upper:
        splits = [
            with_upper_case_ids(s, ex, tok, length, cfg.overlap)
            for s, ex in zip(splits, train_sets, strict=True)
        ]
    return splits
