"""Bring your own backbone, as the README walks through it, with the real commands:
`sidetask serve --backbone DIR` starts with the main task alone (the shipped heads do not fit
and are named in the log), `sidetask train --backbone DIR` makes a head for it, `serve
--heads-dir` serves it, and /admin/reload picks up a retrained version. A heads folder named
explicitly with a head for another backbone still refuses to start."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import httpx
import pytest
from serve_harness import serving, sidetask
from train_harness import sentiment_file

pytestmark = pytest.mark.slow


def _train(backbone: Path, data: Path, out: Path, version: str, cache: Path) -> None:
    done = sidetask(
        "train",
        "--task", "mood",
        "--kind", "sequence",
        "--labels", "negative,positive",
        "--train", str(data),
        "--dev", str(data),
        "--backbone", str(backbone),
        "--out", str(out),
        "--version", version,
        "--k", "16",
        "--epochs", "2",
        "--batch-tokens", "64",
        "--ff-dim", "32",
        "--val-fraction", "0",
        "--threads", "1",
        "--cache-dir", str(cache),
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert json.loads((out / "manifest.json").read_text())["version"] == version


@pytest.mark.parametrize("kind", ["roberta", "bart"])
def test_serve_train_serve_reload_on_your_own_backbone(
    kind: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    backbone: Path = request.getfixturevalue(f"tiny_{kind}_dir")
    main_task = "generate" if kind == "bart" else "embedding"

    log = tmp_path / "bare.log"
    with serving(log, "--backbone", str(backbone)) as base:
        tasks = httpx.get(base + "/tasks").json()
        assert tasks["heads"] == [] and tasks["main_task"] == main_task
        answer = httpx.post(base + "/analyze", json={"texts": ["hi"], "tasks": [main_task]})
        assert answer.status_code == 200 and main_task in answer.json()["results"][0]
    text = log.read_text()
    assert "left out" in text
    for shipped in ("cola", "ner", "sentiment"):
        assert shipped in text

    data = sentiment_file(tmp_path / "mood.jsonl")
    heads = tmp_path / "heads"
    _train(backbone, data, heads / "mood", "1", tmp_path / "cache")
    args = ("--backbone", str(backbone), "--heads-dir", str(heads))
    with serving(tmp_path / "heads.log", *args) as base:
        tasks = httpx.get(base + "/tasks").json()
        assert [(h["name"], h["version"]) for h in tasks["heads"]] == [("mood", "1")]
        mood = httpx.post(base + "/analyze", json={"texts": ["great fun"]}).json()
        assert mood["results"][0]["mood"]["label"] in {"negative", "positive"}

        _train(backbone, data, tmp_path / "retrained", "2", tmp_path / "cache")
        shutil.copytree(tmp_path / "retrained", heads / "mood", dirs_exist_ok=True)
        reloaded = httpx.post(base + "/admin/reload").json()
        assert reloaded["updated"] == ["mood"]
        versions = [h["version"] for h in httpx.get(base + "/tasks").json()["heads"]]
        assert versions == ["2"]


def test_an_explicit_heads_folder_for_another_backbone_still_refuses(
    tiny_roberta_dir: Path, tmp_path: Path
) -> None:
    from heads.shipped import PRETRAINED_HEADS

    done = sidetask(
        "serve", "--port", "0", "--backbone", str(tiny_roberta_dir),
        "--heads-dir", str(PRETRAINED_HEADS),
    )  # fmt: skip
    assert done.returncode != 0
    assert "another backbone" in done.stdout + done.stderr
