"""`sidetask analyze` prints the same JSON as the route, without a server; flags mirror Settings."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import random_head

from cli.main import build_parser, main
from server.settings import Settings


def test_analyze_json_on_the_default_backbone(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["analyze", "Paris is lovely in spring.", "--tasks", "embedding", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["backbone"] == "sentence-transformers/all-MiniLM-L6-v2"
    assert len(out["results"]) == 1
    assert len(out["results"][0]["embedding"]) == 384
    assert out["usage"]["layers_run"] == 6


def test_analyze_with_heads_and_readable_output(
    tiny_roberta_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from heads.io import save_head
    from models.backbone import Backbone

    info = Backbone.load(tiny_roberta_dir).info
    save_head(random_head(info, "sentiment"), tmp_path / "sentiment")
    args = ["--backbone", str(tiny_roberta_dir), "--heads-dir", str(tmp_path)]
    assert main(["analyze", "great movie", *args]) == 0
    out = capsys.readouterr().out
    assert "sentiment:" in out and "tokens" in out


def test_unknown_task_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["analyze", "x", "--tasks", "nope"]) == 2
    assert "available:" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["serve", "analyze"])
def test_every_setting_is_a_flag_with_its_env_var(
    command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args([command, "--help"])
    assert exc.value.code == 0
    text = capsys.readouterr().out
    for name in Settings.model_fields:
        assert "--" + name.replace("_", "-") in text
        assert "SIDETASK_" + name.upper() in text


def test_flags_override_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from cli.main import settings_from_args

    monkeypatch.setenv("SIDETASK_PORT", "9001")
    monkeypatch.setenv("SIDETASK_MAX_TEXTS", "7")
    args = build_parser().parse_args(["serve", "--port", "9002"])
    settings = settings_from_args(args)
    assert settings.port == 9002
    assert settings.max_texts == 7
