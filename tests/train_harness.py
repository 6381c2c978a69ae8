"""Shared by the training tests: toy data files and a small config on a tiny backbone."""

from __future__ import annotations

import json
from pathlib import Path

from train.config import TrainConfig
from train.loop import LOG_FILE, train

POS = ["good fun", "a great film", "nice and good", "great great", "fun , nice"]
NEG = ["bad dull", "a boring film", "dull and bad", "awful awful", "bad , boring"]


def sentiment_file(path: Path, repeat: int = 4) -> Path:
    rows = [{"text": t, "label": "positive"} for t in POS] + [
        {"text": t, "label": "negative"} for t in NEG
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows * repeat))
    return path


def ner_file(path: Path) -> Path:
    rows = [
        {
            "tokens": ["Anna", "met", "Bob", "in", "Paris"],
            "tags": ["B-PER", "O", "B-PER", "O", "B-LOC"],
        },
        {"tokens": ["Bob", "Smith", "left", "Rome"], "tags": ["B-PER", "I-PER", "O", "B-LOC"]},
        {"tokens": ["in", "Paris", "Anna", "sang"], "tags": ["O", "B-LOC", "B-PER", "O"]},
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows * 4))
    return path


def config(tmp_path: Path, backbone_dir: Path, kind: str, data: Path, **kw: object) -> TrainConfig:
    base: dict[str, object] = dict(
        task="toy",
        kind=kind,
        train=[str(data)],
        dev=[str(data)],
        out=str(tmp_path / "head"),
        backbone=str(backbone_dir),
        k=16,
        lr=1e-2,
        batch_tokens=64,
        epochs=4,
        patience=10,
        cache_dir=str(tmp_path / "cache"),
        ff_dim=32,
        threads=1,
        val_fraction=0.0,  # toy files are tiny: select on dev unless a test asks otherwise
    )
    base.update(kw)
    return TrainConfig(**base)  # type: ignore[arg-type]


def read_log(out: str) -> list[dict[str, object]]:
    return [json.loads(x) for x in (Path(out) / LOG_FILE).read_text().splitlines()]


def train_sentiment_head(
    tmp_path: Path, backbone_dir: Path, data: Path, name: str, **kw: object
) -> str:
    """Train a negative/positive sequence head into ``tmp_path/name``; its folder."""
    cfg = config(
        tmp_path,
        backbone_dir,
        "sequence",
        data,
        out=str(tmp_path / name),
        labels=["negative", "positive"],
        slice_size=0,
        **kw,
    )
    train(cfg)
    return cfg.out


def final_dev_accuracy(
    tmp_path: Path, backbone_dir: Path, data: Path, name: str, **kw: object
) -> float:
    """Train a negative/positive sequence head into ``tmp_path/name``; its last dev accuracy."""
    out = train_sentiment_head(tmp_path, backbone_dir, data, name, **kw)
    return float(read_log(out)[-1]["selection"])  # type: ignore[arg-type]


def contradictory_file(path: Path, repeat: int = 1) -> Path:
    """Every toy text once per label: no head can fit it, so the dev accuracy on it is 0.5
    whatever the head says; only class weights can tip a prediction."""
    rows = [{"text": t, "label": lab} for t in POS + NEG for lab in ("negative", "positive")]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows * repeat))
    return path
