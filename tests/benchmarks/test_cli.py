"""`sidetask bench <name>` reaches every benchmark and hands it its own flags."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cli.main import build_parser, main


def test_every_benchmark_module_is_a_subcommand() -> None:
    from benchmarks.cli import available

    names = set(available())
    assert {"overhead", "one_pass", "memory", "early_exit", "scaling"} <= names
    for name in names:
        args = build_parser().parse_args(["bench", name, "--repeats", "7"])
        assert args.argv == ["--repeats", "7"]


def test_bench_help_is_the_benchmarks_own(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["bench", "early_exit", "--help"])
    assert exc.value.code == 0
    assert "--cuts" in capsys.readouterr().out


def test_bench_subcommand_runs_and_records_the_command(
    tiny_roberta_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    argv = ["bench", "early_exit", "--backbone", str(tiny_roberta_dir), "--out", str(tmp_path)]
    argv += ["--repeats", "1", "--warmup", "0", "--shapes", "1x8", "--cuts", "1"]
    monkeypatch.setattr("sys.argv", ["sidetask", *argv])
    assert main(argv) == 0
    result = json.loads((tmp_path / "early_exit_cpu.json").read_text())
    assert result["command"].startswith("sidetask bench early_exit")
