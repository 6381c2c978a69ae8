"""The layers keep their direction: models < heads < engine < server/train < benchmarks < cli."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _layers():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("layers", ROOT / ".ci" / "layers.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["layers"] = module
    spec.loader.exec_module(module)
    return module


def test_no_import_goes_up_a_layer_or_sideways() -> None:
    assert _layers().violations() == []


def test_no_module_level_import_cycle() -> None:
    assert _layers().cycles() == []


def test_the_check_catches_an_upward_import(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    layers = _layers()
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "x.py").write_text("from server.app import create_app\n")
    (tmp_path / "server").mkdir()
    (tmp_path / "server" / "app.py").write_text("import models.x\n")
    monkeypatch.setattr(layers, "ROOT", tmp_path)
    assert layers.violations() == ["models/x.py:1: models -> server"]
    assert layers.cycles() == [["models.x", "server.app"]]
