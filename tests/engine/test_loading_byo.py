"""engine.loading with your own backbone and no heads folder: the shipped heads that do not fit
are left out and named in the log; one that fits is still loaded; a named folder stays strict."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import pytest
from app_harness import save_tiny_heads

from engine import loading
from heads.io import HeadLoadError
from heads.shipped import PRETRAINED_HEADS
from models.backbone import Backbone
from server.settings import Settings


def test_own_backbone_without_heads_dir_starts_with_the_main_task_alone(
    tiny_roberta: Backbone, tiny_roberta_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = Settings(backbone=str(tiny_roberta_dir))
    with caplog.at_level(logging.WARNING, logger=loading.log.name):
        heads = loading.load_heads(settings, tiny_roberta)
    assert heads.heads == {}
    shipped = sorted(p.name for p in PRETRAINED_HEADS.iterdir() if p.is_dir())
    message = " ".join(r.getMessage() for r in caplog.records)
    assert "left out" in message
    for name in shipped:
        assert f"{name} (" in message and "another backbone" in message


def test_a_shipped_head_that_fits_the_backbone_is_kept(
    tiny_roberta: Backbone,
    tiny_roberta_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    shipped = tmp_path / "pretrained"
    shutil.copytree(PRETRAINED_HEADS / "cola", shipped / "cola")  # for MiniLM: left out
    save_tiny_heads(tiny_roberta.info, shipped)  # sentiment and ner for this backbone: kept
    monkeypatch.setattr(loading, "PRETRAINED_HEADS", shipped)
    heads = loading.load_heads(Settings(backbone=str(tiny_roberta_dir)), tiny_roberta)
    assert heads.names == ["ner", "sentiment"]


def test_a_named_heads_folder_with_a_foreign_head_still_refuses(
    tiny_roberta: Backbone, tiny_roberta_dir: Path
) -> None:
    settings = Settings(backbone=str(tiny_roberta_dir), heads_dir=[PRETRAINED_HEADS])
    with pytest.raises(HeadLoadError, match="another backbone"):
        loading.load_heads(settings, tiny_roberta)
