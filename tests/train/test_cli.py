"""`sidetask train` and `sidetask eval` end a bad setting like a bad flag: one line
``sidetask <command>: error: <what to fix>`` on stderr and exit status 2, no traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from train_harness import sentiment_file

from cli.main import main

ROOT = Path(__file__).resolve().parents[2]


def train_argv(tmp_path: Path, data: Path, *extra: str) -> list[str]:
    return [
        "train",
        "--task",
        "toy",
        "--train",
        str(data),
        "--dev",
        str(data),
        "--out",
        str(tmp_path / "head"),
        "--cache-dir",
        str(tmp_path / "cache"),
        "--threads",
        "1",
        *extra,
    ]


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (
            ["--kind", "sequence", "--case-dropout", "0.3"],
            "--case-dropout takes a share in (0, 1) and needs --case-features",
        ),
        (
            ["--kind", "token", "--pooling", "max"],
            "--pooling is for sequence or multilabel heads (--kind sequence or multilabel) only",
        ),
        (
            ["--kind", "sequence", "--val-fraction", "0.6"],
            "--val-fraction takes a share in [0, 0.5), got 0.6",
        ),
        (["--kind", "sequence", "--class-weights", "0", "1"], "--class-weights must be positive"),
    ],
)
def test_a_bad_combination_of_flags_exits_2_before_any_work(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], flags: list[str], message: str
) -> None:
    data = sentiment_file(tmp_path / "toy.jsonl", repeat=1)
    assert main(train_argv(tmp_path, data, *flags)) == 2
    assert capsys.readouterr().err == f"sidetask train: error: {message}\n"
    assert not (tmp_path / "head").exists()  # refused before the run started


def test_flags_that_clash_with_the_data_exit_2(
    tmp_path: Path, tiny_roberta_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = sentiment_file(tmp_path / "toy.jsonl", repeat=1)
    argv = train_argv(tmp_path, data, "--kind", "token", "--backbone", str(tiny_roberta_dir))
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "sidetask train: error: --kind token does not match the training data\n" in err


def test_a_file_too_small_for_a_validation_split_exits_2(
    tmp_path: Path, tiny_roberta_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    one = tmp_path / "one.tsv"
    one.write_text("text\tlabel\ngood film\tpositive\n")
    argv = train_argv(tmp_path, one, "--kind", "sequence", "--labels", "negative,positive")
    assert main([*argv, "--backbone", str(tiny_roberta_dir)]) == 2
    err = capsys.readouterr().err  # progress bars of the feature cache come first
    last = err.strip().splitlines()[-1]
    assert last.startswith("sidetask train: error: ") and "Traceback" not in err
    assert "cannot give a validation split" in last and "--val-fraction 0" in last


def test_eval_of_a_missing_data_file_exits_2(
    tmp_path: Path, tiny_roberta_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["eval", "--head", str(tmp_path / "head"), "--data", str(tmp_path / "none.jsonl")]
    assert main([*argv, "--backbone", str(tiny_roberta_dir), "--threads", "1"]) == 2
    assert f"sidetask eval: error: {tmp_path / 'none.jsonl'}: no such file" in (
        capsys.readouterr().err
    )


def test_the_command_exits_with_status_2(tmp_path: Path) -> None:
    """The installed entry point (``python -m cli.main``) turns the 2 into the exit status."""
    data = sentiment_file(tmp_path / "toy.jsonl", repeat=1)
    argv = train_argv(tmp_path, data, "--kind", "token", "--block", "encoder")
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "cli.main", *argv],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    assert done.stderr.strip() == (
        "sidetask train: error: --block is for sequence or multilabel heads "
        "(--kind sequence or multilabel) only"
    )
