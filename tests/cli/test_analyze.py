"""`sidetask analyze` prints the same JSON as the route, without a server; flags mirror Settings."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from typing import Any

import pytest
from app_harness import assert_same_answers, engine_factory, running, save_tiny_heads
from conftest import random_head
from schema_check import response_validator, schema_errors

from cli.main import build_parser, main
from heads.io import save_head
from models.backbone import Backbone
from server.app import create_app
from server.settings import Settings


def test_analyze_json_on_the_default_backbone(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["analyze", "Paris is lovely in spring.", "--tasks", "embedding", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["backbone"] == "sentence-transformers/all-MiniLM-L6-v2"
    assert len(out["results"]) == 1
    assert len(out["results"][0]["embedding"]) == 384
    assert out["usage"]["layers_run"] == 6


def test_analyze_with_heads_and_readable_output(
    tiny_roberta: Backbone,
    tiny_roberta_dir: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    heads = save_tiny_heads(tiny_roberta.info, tmp_path)
    topics = random_head(tiny_roberta.info, "topics", "multilabel", labels=["art", "sport"])
    topics.manifest.threshold = 0.01  # random weights: both labels chosen
    save_head(topics, heads / "topics")
    args = ["--backbone", str(tiny_roberta_dir), "--heads-dir", str(heads)]
    assert main(["analyze", "great movie", *args]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "> great movie"
    assert re.fullmatch(r"  ner: .*(\[\d+:\d+\]|\(none\))", lines[1]), lines
    assert re.fullmatch(r"  sentiment: (negative|positive) \(0\.\d{3}\)", lines[2]), lines
    assert re.fullmatch(r"  topics: (art|sport) \(0\.\d{3}\); (art|sport) \(0\.\d{3}\)", lines[3])
    assert re.fullmatch(r"  embedding: \[(-?0\.\d{4}, ){4}\.\.\.\] \(64 floats\)", lines[4]), lines
    assert re.fullmatch(r"\(.+: \d+ tokens, 3 layers run\)", lines[5]), lines


def test_analyze_json_is_the_route_answer_and_matches_its_schema(
    tiny_roberta: Backbone,
    tiny_roberta_dir: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    heads = save_tiny_heads(tiny_roberta.info, tmp_path)
    texts = ["Angela Merkel visited Paris.", "Émile met 東京 friends 👩‍👩‍👧", ""]
    tasks = ["sentiment", "ner", "embedding"]
    args = ["--backbone", str(tiny_roberta_dir), "--heads-dir", str(heads), "--json"]
    assert main(["analyze", *texts, "--tasks", ",".join(tasks), *args]) == 0
    printed = json.loads(capsys.readouterr().out)

    app = create_app(
        Settings(backbone=str(tiny_roberta_dir), heads_dir=[heads]), engine_factory(tiny_roberta)
    )

    async def route() -> tuple[dict[str, Any], dict[str, Any]]:
        async with running(app) as c:
            r = await c.post("/analyze", json={"texts": texts, "tasks": tasks})
            assert r.status_code == 200, r.text
            return (await c.get("/openapi.json")).json(), r.json()

    openapi, served = asyncio.run(route())
    assert schema_errors(response_validator(openapi, "/analyze", 200), printed) == []
    assert [list(a) for a in printed["results"]] == [["ner", "sentiment", "embedding"]] * 3
    assert_same_answers(printed, served)


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
