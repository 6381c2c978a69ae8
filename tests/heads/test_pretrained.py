"""The shipped heads load into the engine and reproduce the dev-slice metrics in their
manifests (first 200 examples of each dev file, scored through engine.core.Engine)."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from engine.core import Engine, EngineConfig
from engine.settings import EngineSettings
from heads.io import read_manifest
from heads.registry import head_folders, load_head_set
from heads.shipped import PRETRAINED_HEADS
from models.backbone import Backbone
from train.data import read_examples
from train.evaluate import predict_engine, score

REPO = Path(__file__).resolve().parents[2]
DATA = Path(os.environ.get("SIDETASK_DATA", REPO.parent / "shared" / "data"))
DEV_FILES = {
    "sst2_dev": "sst2/dev.tsv",
    "imdb_dev": "imdb/dev.tsv",
    "cola_dev": "cola/dev.tsv",
    "conll2003_dev": "conll2003/dev.txt",
}
SLICE = re.compile(r"^(?P<data>.+?)(?P<size>\d+)_(?P<metric>accuracy|mcc|f1|correct|n)$")
SHIPPED = {"sentiment", "sentiment-long", "cola", "ner"}


def recorded_slices(folder: Path) -> dict[tuple[str, int], dict[str, float]]:
    out: dict[tuple[str, int], dict[str, float]] = {}
    for key, value in read_manifest(folder).metrics.items():
        m = SLICE.match(key)
        if m and m["data"] in DEV_FILES:
            out.setdefault((m["data"], int(m["size"])), {})[m["metric"]] = value
    return out


def test_every_default_task_is_shipped() -> None:
    names = {read_manifest(f).name for f in head_folders([PRETRAINED_HEADS])}
    assert names >= SHIPPED
    for folder in head_folders([PRETRAINED_HEADS]):
        assert recorded_slices(folder), f"{folder} records no dev-slice metric"
        assert (folder / "layer_weights.png").is_file()


@pytest.mark.skipif(not DATA.is_dir(), reason=f"dev data not found at {DATA}")
@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_shipped_head_reproduces_its_dev_slice(minilm: Backbone, name: str) -> None:
    heads = load_head_set([PRETRAINED_HEADS], minilm.info)
    head = heads.heads[name]
    folder = next(f for f in head_folders([PRETRAINED_HEADS]) if read_manifest(f).name == name)
    engine = Engine(
        minilm, heads, EngineConfig.from_settings(EngineSettings(window_overlap=64, kernel="torch"))
    )
    for (data, size), expected in recorded_slices(folder).items():
        examples = read_examples(DATA / DEV_FILES[data])[:size]
        result = score(head, examples, predict_engine(engine, name, examples, head.labels))
        for metric, value in expected.items():
            assert result[metric] == pytest.approx(value, abs=1e-6), (data, metric)
