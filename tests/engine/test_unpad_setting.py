"""The unpad setting: on by default, build_engine runs a BERT-family backbone without pad
tokens, ``unpad=False`` keeps the padded pass, and the answers do not depend on it."""

from __future__ import annotations

from pathlib import Path

import pytest
from app_harness import save_tiny_heads

from engine.loading import build_engine
from engine.settings import EngineSettings
from heads.answers import ClassAnswer
from models.backbone import Backbone

#: Windows of very different lengths in one micro-batch, one text over several windows.
TEXTS = ["Anna flew to Paris.", "ok", "the film was long and slow " * 12, "Berlin in May, again."]


def test_unpad_is_on_by_default_and_the_answers_match_the_padded_pass(
    tiny_roberta: Backbone, tiny_roberta_dir: Path, tmp_path: Path
) -> None:
    assert EngineSettings().unpad is True
    heads = save_tiny_heads(tiny_roberta.info, tmp_path / "heads")
    common = {"backbone": str(tiny_roberta_dir), "heads_dir": [heads], "device": "cpu"}
    on = build_engine(EngineSettings(**common, dtype="float32", window_overlap=8))
    off = build_engine(EngineSettings(**common, dtype="float32", window_overlap=8, unpad=False))
    assert on.backbone.unpadded and not off.backbone.unpadded
    tasks = ["sentiment", "ner", "embedding"]
    want, got = off.analyze(TEXTS, tasks), on.analyze(TEXTS, tasks)
    for a, b in zip(want.results, got.results, strict=True):
        sa, sb = a["sentiment"], b["sentiment"]
        assert isinstance(sa, ClassAnswer) and isinstance(sb, ClassAnswer)
        assert sa.label == sb.label
        assert sb.scores == pytest.approx(sa.scores, abs=1e-5)
        spans = [(e.start, e.end, e.label) for e in a["ner"]]  # type: ignore[union-attr]
        assert [(e.start, e.end, e.label) for e in b["ner"]] == spans  # type: ignore[union-attr]
        assert b["embedding"] == pytest.approx(a["embedding"], abs=1e-5)
