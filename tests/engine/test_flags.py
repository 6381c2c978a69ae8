"""Every flag of analyze/train/eval/bench is also a SIDETASK_<COMMAND>_<FLAG> variable."""

from __future__ import annotations

import argparse

import pytest

from benchmarks import serve as serve_bench
from cli.main import ENV_COMMANDS, build_parser, parse_args
from server.settings import Settings

TRAIN = ["train", "--task", "t", "--kind", "sequence", "--train", "a", "--dev", "b", "--out", "o"]


def test_train_flags_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {
        "TASK": "cola",
        "KIND": "sequence",
        "TRAIN": "x.tsv 'with space.tsv'",
        "DEV": "dev.tsv",
        "OUT": "runs/c",
        "LR": "3e-3",
        "POSITIONS": "yes",
        "RESUME": "1",
        "CLASS_WEIGHTS": "balanced",
    }.items():
        monkeypatch.setenv(f"SIDETASK_TRAIN_{name}", value)
    args = parse_args(["train"])
    assert (args.task, args.kind, args.out) == ("cola", "sequence", "runs/c")
    assert args.train == ["x.tsv", "with space.tsv"] and args.dev == ["dev.tsv"]
    assert args.lr == 3e-3 and args.positions is True and args.resume is True
    assert args.class_weights == ["balanced"]


def test_a_flag_on_the_command_line_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SIDETASK_TRAIN_LR", "3e-3")
    monkeypatch.setenv("SIDETASK_TRAIN_POSITIONS", "true")
    monkeypatch.setenv("SIDETASK_TRAIN_EPOCHS", "9")
    args = parse_args([*TRAIN, "--lr=0.5", "--no-positions", "--epoch", "2"])
    assert args.lr == 0.5 and args.positions is False and args.epochs == 2


def test_false_switches_and_unset_variables_keep_defaults(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SIDETASK_TRAIN_RESUME", "off")
    args = parse_args(TRAIN)
    assert args.resume is False and args.lr == 1e-3 and args.ema == 0.0


def test_a_bad_switch_names_its_variable(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SIDETASK_TRAIN_RESUME", "maybe")
    with pytest.raises(SystemExit) as exc:
        parse_args(TRAIN)
    assert exc.value.code == 2
    assert "SIDETASK_TRAIN_RESUME='maybe'" in capsys.readouterr().err


def test_a_bad_value_is_refused_like_the_flag(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SIDETASK_EVAL_MAX_EXAMPLES", "many")
    with pytest.raises(SystemExit):
        parse_args(["eval", "--head", "h", "--data", "d"])
    assert "--max-examples: invalid int value: 'many'" in capsys.readouterr().err


def test_analyze_settings_stay_sidetask_field_variables(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Settings are read by pydantic-settings (SIDETASK_BACKBONE), not twice."""
    monkeypatch.setenv("SIDETASK_ANALYZE_JSON", "1")
    monkeypatch.setenv("SIDETASK_ANALYZE_TASKS", "cola,ner")
    monkeypatch.setenv("SIDETASK_ANALYZE_BACKBONE", "ignored")
    args = parse_args(["analyze", "a text"])
    assert args.json is True and args.tasks == "cola,ner" and args.texts == ["a text"]
    assert args.backbone is None


def test_every_flag_names_its_variable_in_help() -> None:
    subs = build_parser().subcommands()
    for command in ENV_COMMANDS:
        for action in subs[command].flag_actions:
            longs = [s for s in action.option_strings if s.startswith("--")]
            if not longs or action.default == argparse.SUPPRESS:  # --help
                continue
            if command == "analyze" and action.dest in Settings.model_fields:
                assert "[env SIDETASK_" + action.dest.upper() in (action.help or "")
                continue
            flag = max((s for s in longs if not s.startswith("--no-")), key=len)
            env = f"SIDETASK_{command.upper()}_" + flag[2:].replace("-", "_").upper()
            assert f"[env {env}]" in (action.help or ""), (command, flag)


def test_benchmark_flags_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SIDETASK_BENCH_SERVE_SECONDS", "2.5")
    monkeypatch.setenv("SIDETASK_BENCH_SERVE_CONCURRENCY", "1,4")
    args = serve_bench.parse_args(["--ramp-up", "0.5"])
    assert args.seconds == 2.5 and args.concurrency == [1, 4] and args.ramp_up == 0.5


@pytest.mark.parametrize("name", ["scheduling", "step_size", "overhead", "peer"])
def test_every_benchmark_reads_its_flags_from_the_environment(
    name: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import importlib

    module = importlib.import_module(f"benchmarks.{name}")
    monkeypatch.setenv(f"SIDETASK_BENCH_{name.upper()}_REPEATS", "not-a-number")
    with pytest.raises(SystemExit) as exc:
        module.main([])
    assert exc.value.code == 2  # argparse refused the variable's value before any work
    assert "--repeats" in capsys.readouterr().err


def test_a_plain_argument_parser_is_refused_with_the_fix() -> None:
    from engine.flags import parse_with_env

    with pytest.raises(TypeError, match="EnvFlagParser"):
        parse_with_env(argparse.ArgumentParser(), [], "SIDETASK_X_")
