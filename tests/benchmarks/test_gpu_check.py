"""The GPU check's plan and plumbing, on CPU: what the first session lent a GPU relies on."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from benchmarks import gpu_check

REPO = Path(gpu_check.__file__).resolve().parent.parent


def _plan(*argv: str) -> list[gpu_check.Step]:
    return gpu_check.plan(gpu_check.build_parser().parse_args(list(argv)))


def test_the_cuda_only_tests_are_found_by_their_markers() -> None:
    files = gpu_check.cuda_test_files()
    assert "tests/models/kernels/test_kernel_gpu.py" in files
    tests = _plan()[0]
    assert tests.name == "tests" and "tests/models/kernels" in tests.argv
    # every CUDA-only file runs, inside the kernels folder or named on its own
    for f in files:
        assert f.startswith("tests/models/kernels/") or f in tests.argv


def test_every_benchmark_step_is_accepted_by_that_benchmarks_own_parser() -> None:
    steps = _plan("--backbone", "/m", "--heads-dir", "/h", "--data-dir", "/d")
    names = [s.name for s in steps]
    assert names[:2] == ["tests", "accumulate"] and "limit" in names and "serve" in names
    for step in steps[1:]:
        assert step.argv[1:3] == ["-m", f"benchmarks.{step.name}"]
        module = importlib.import_module(f"benchmarks.{step.name}")
        argv = step.argv[3:]
        parser = getattr(module, "build_parser", None)
        args = parser().parse_args(argv) if parser else module.parse_args(argv)
        assert str(args.device) == "cuda", step.name
        assert Path(args.out) == gpu_check.RESULTS
        if hasattr(args, "heads_dir") and step.name in ("head_dtype", "serve"):
            assert str(args.heads_dir) == "/h"
        if hasattr(args, "data_dir"):
            assert str(args.data_dir) == "/d"


def test_the_default_plan_fits_the_budget_that_the_issue_sets() -> None:
    parsed = gpu_check.build_parser().parse_args([])
    assert parsed.budget_s < 8 * 60  # the whole run, whatever the per-step caps add up to


def test_only_selects_steps_and_refuses_unknown_names() -> None:
    assert [s.name for s in _plan("--only", "limit,tests")] == ["tests", "limit"]
    with pytest.raises(SystemExit, match="unknown steps"):
        _plan("--only", "nope")


def test_dry_run_prints_every_command_and_runs_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert gpu_check.main(["--dry-run", "--out", str(tmp_path), "--collect", "/x"]) == 0
    printed = capsys.readouterr().out
    for step in _plan("--out", str(tmp_path)):
        assert step.command() in printed
    assert "archived into /x" in printed
    assert list(tmp_path.iterdir()) == []


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal without CUDA")
def test_without_cuda_it_stops_at_once_and_says_why(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert gpu_check.main(["--out", str(tmp_path)]) == gpu_check.NO_CUDA_EXIT
    assert "no CUDA device" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_a_step_past_its_limit_is_stopped_and_recorded(tmp_path: Path) -> None:
    step = gpu_check.Step("hang", [sys.executable, "-c", "import time; time.sleep(60)"], 1, "x")
    with (tmp_path / "log").open("w") as log:
        got = gpu_check.run_step(step, 1.0, log)
    assert got["status"] == "timeout" and got["seconds"] < 30
    ok = gpu_check.Step("ok", [sys.executable, "-c", "print('fine')"], 30, "y")
    with (tmp_path / "log").open("w") as log:
        got = gpu_check.run_step(ok, 30.0, log)
    assert got["status"] == "passed" and got["tail"] == ["fine"]
    assert "fine" in (tmp_path / "log").read_text()


def test_collect_archives_the_new_results_and_the_log(tmp_path: Path) -> None:
    import tarfile

    (tmp_path / "a.json").write_text("{}")
    log = tmp_path / "gpu_check_cuda.log"
    log.write_text("x")
    archive = gpu_check.collect(tmp_path / "out", [tmp_path / "a.json"], log)
    with tarfile.open(archive) as tar:
        assert tar.getnames() == ["a.json"]
    assert (tmp_path / "out" / log.name).read_text() == "x"


def test_shell_wrapper_passes_arguments_and_out_through() -> None:
    env = {**os.environ, "PYTHON": sys.executable, "OUT": "/tmp/collected"}
    run = subprocess.run(
        ["bash", str(REPO / "benchmarks" / "gpu_check.sh"), "--dry-run", "--only", "limit"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    assert "benchmarks.limit --device cuda" in run.stdout
    assert "archived into /tmp/collected" in run.stdout
    assert "benchmarks.accumulate" not in run.stdout
