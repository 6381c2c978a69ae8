"""Every GPU test and GPU measurement in one bounded run, for the first session lent a GPU.

A GPU is lent rarely and for minutes, so this is prepared and tested on CPU: the plan is a
fixed list of steps (the CUDA-only tests, then each benchmark with settings sized so the
whole run fits ``--budget-s``, 450 s by default), each under its own timeout, the remaining
steps skipped once the budget is spent. Every step's JSON lands in benchmarks/results/
(``*_cuda*.json``), and a summary with the device name, each command, its exit code and
seconds in ``benchmarks/results/gpu_check_cuda.json``. Without CUDA it stops at once with
exit code 2 and says why; ``--dry-run`` prints the commands and runs nothing (works anywhere).

    python -m benchmarks.gpu_check --dry-run           # the commands, no GPU needed
    bash benchmarks/gpu_check.sh                       # on the GPU machine (see docs)
    python -m benchmarks.gpu_check --only tests,accumulate --budget-s 200

``--collect DIR`` also copies the new result files and the log into DIR (the device tool's
``$OUT``); see docs/benchmarks.md "GPU check".
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tarfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "benchmarks" / "results"
#: A test file is CUDA-only when it carries one of these (a skip without CUDA).
CUDA_MARKERS = ("needs_cuda", "pytest.mark.gpu", "skipif(not torch.cuda.is_available()")
NO_CUDA_EXIT = 2


@dataclass(frozen=True)
class Step:
    """One command of the run: a name to select it by, its argv and its own time limit."""

    name: str
    argv: list[str]
    timeout_s: float
    what: str

    def command(self) -> str:
        return shlex.join(self.argv)


def cuda_test_files(tests: Path = REPO / "tests") -> list[str]:
    """Test files that skip without CUDA (found by their markers, so new ones join the run)."""
    found = []
    for path in sorted(tests.rglob("test_*.py")):
        text = path.read_text(errors="replace")
        if any(marker in text for marker in CUDA_MARKERS):
            found.append(str(path.relative_to(REPO)))
    return found


def plan(args: argparse.Namespace) -> list[Step]:
    """The steps in priority order (tests, kernel, overhead, fidelity, server, the rest)."""
    py = [args.python, "-m"]
    out = ["--out", str(args.out)]
    cuda = ["--device", "cuda"]
    large = [*cuda, "--dtype", "float16", "--shape", "roberta-large"]
    backbone = ["--backbone", args.backbone] if args.backbone else []
    heads = ["--heads-dir", args.heads_dir] if args.heads_dir else []
    data = ["--data-dir", args.data_dir]
    kernels = "tests/models/kernels"
    extra = [f for f in cuda_test_files() if not f.startswith(kernels + "/")]
    tests = [*py, "pytest", "-q", "-p", "no:cacheprovider", kernels, *extra]
    steps = [
        Step("tests", tests, 120, "CUDA-only tests + the kernel tests, compiled Triton"),
        Step(
            "accumulate",
            [*py, "benchmarks.accumulate", *cuda, "--repeats", "5", "--inner", "10", *out],
            60,
            "fused Triton accumulate vs eager vs torch.compile; whole RoBERTa-large",
        ),
        Step(
            "overhead",
            [
                *py,
                "benchmarks.overhead",
                *large,
                "--shapes",
                "1x32,8x128,32x128,8x512",
                "--heads",
                "1,3,16",
                "--repeats",
                "5",
                *out,
            ],
            50,
            "cost of 1/3/16 heads over RoBERTa-large alone, fp16",
        ),
        Step(
            "head_dtype",
            [
                *py,
                "benchmarks.head_dtype",
                *cuda,
                *backbone,
                *heads,
                *data,
                "--limit",
                "400",
                "--repeats",
                "5",
                *out,
            ],
            50,
            "bf16 fidelity (answers vs float32) and texts/s on the GPU, shipped heads",
        ),
        Step(
            "dtype_gate",
            [*py, "benchmarks.dtype_gate", *cuda, *backbone, *heads, *data, "--batch", "64", *out],
            60,
            "dtype auto's fidelity gate on the GPU (every dev text, bf16 or fp16 vs float32); "
            "on .gpu's fp16-rounded MiniLM its fingerprint is not the shipped one: not shipped",
        ),
        Step(
            "serve",
            [
                *py,
                "benchmarks.serve",
                *cuda,
                *backbone,
                *heads,
                "--concurrency",
                "8,64",
                "--offline-batches",
                "8,64",
                "--seconds",
                "3",
                "--ramp-up",
                "0.5",
                "--repeats",
                "3",
                "--client",
                "httpx",
                *out,
            ],
            60,
            "server vs offline engine, embedding / 3 heads / all",
        ),
        Step(
            "scheduling",
            [
                *py,
                "benchmarks.scheduling",
                *cuda,
                *backbone,
                *data,
                "--requests",
                "20",
                "--seconds",
                "3",
                "--repeats",
                "3",
                *out,
            ],
            50,
            "lone request overhead, small beside giant, hang-up",
        ),
        Step(
            "one_pass",
            [*py, "benchmarks.one_pass", *large, "--shapes", "1x128,32x128", *out],
            25,
            "one pass for 3 tasks vs 3 passes",
        ),
        Step(
            "memory",
            [
                *py,
                "benchmarks.memory",
                *large,
                "--tasks",
                "1,3,8",
                "--batches",
                "1,8,32",
                "--lengths",
                "128,512",
                "--base",
                "32x512",
                "--repeats",
                "5",
                *out,
            ],
            30,
            "peak extra memory, streaming vs stacked, RoBERTa-large 32x512",
        ),
        Step(
            "early_exit",
            [*py, "benchmarks.early_exit", *large, "--shapes", "8x128", *out],
            20,
            "early exit",
        ),
        Step(
            "scaling",
            [
                *py,
                "benchmarks.scaling",
                *cuda,
                "--dtype",
                "float16",
                "--backbones",
                "minilm,roberta-base,roberta-large",
                "--shapes",
                "8x128",
                *out,
            ],
            40,
            "3-head overhead by backbone size",
        ),
        Step(
            "compile",
            [*py, "benchmarks.compile", *cuda, *backbone, *heads, "--repeats", "5", *out],
            60,
            "torch.compile of the backbone vs eager: start-up, texts/s, same answers",
        ),
        Step(
            "padding",
            [*py, "benchmarks.padding", *cuda, *backbone, *data, "--requests", "16", *out],
            45,
            "padded-token fraction by policy; padded vs padding-free (unpad) forward and "
            "engine; what jagged NJT SDPA picks on CUDA",
        ),
        Step(
            "limit",
            [*py, "benchmarks.limit", *cuda, *backbone, "--size", "8192", *out],
            20,
            "matmul peak and the FLOP-bound texts/s of the backbone",
        ),
    ]
    if args.only:
        wanted = set(args.only.split(","))
        unknown = wanted - {s.name for s in steps}
        if unknown:
            raise SystemExit(f"unknown steps {sorted(unknown)}; known: {[s.name for s in steps]}")
        steps = [s for s in steps if s.name in wanted]
    return steps


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks.gpu_check", description=__doc__)
    p.add_argument("--dry-run", action="store_true", help="Print the commands; run nothing.")
    p.add_argument("--only", default="", help="Comma-separated step names (default: all).")
    p.add_argument("--budget-s", type=float, default=450.0, help="Whole run; later steps skip.")
    p.add_argument("--python", default=sys.executable, help="Interpreter for every step.")
    p.add_argument("--backbone", default=None, help="Backbone folder (default packaged MiniLM).")
    p.add_argument(
        "--heads-dir", default=None, help="Heads for head_dtype/serve (default shipped)."
    )
    p.add_argument("--data-dir", default="../shared/data", help="Dev sets root.")
    p.add_argument("--out", type=Path, default=RESULTS, help="Where each step writes its JSON.")
    p.add_argument("--collect", type=Path, default=None, help="Also copy results + log here.")
    return p


def cuda_device() -> str | None:
    """The GPU's name, or None without a usable CUDA device (torch imported only here)."""
    try:
        import torch
    except ImportError:
        return None
    if not torch.cuda.is_available():
        return None
    return str(torch.cuda.get_device_name(0))


def run_step(step: Step, limit: float, log: Any) -> dict[str, Any]:
    """Run one step under ``limit`` seconds; its output goes to the log and the console."""
    started = time.monotonic()
    log.write(f"\n=== {step.name}: {step.command()}\n")
    log.flush()
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "HF_HUB_OFFLINE": "1"}
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    proc = subprocess.Popen(  # own session: a timeout also ends a server the step started
        step.argv,
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    tail: list[str] = []

    def pump() -> None:  # on a thread, so a silent hung step still meets its timeout
        assert proc.stdout is not None
        for line in proc.stdout:
            sys.stdout.write(line)
            log.write(line)
            tail[:] = [*tail[-29:], line.rstrip()]

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    try:
        proc.wait(timeout=limit)
        status = "passed" if proc.returncode == 0 else "failed"
    except subprocess.TimeoutExpired:
        status = "timeout"
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    reader.join(5)
    return {
        "name": step.name,
        "what": step.what,
        "command": step.command(),
        "status": status,
        "returncode": proc.returncode,
        "seconds": round(time.monotonic() - started, 2),
        "limit_s": round(limit, 1),
        "tail": tail,
    }


def new_results(out: Path, since: float) -> list[Path]:
    return sorted(p for p in out.glob("*") if p.is_file() and p.stat().st_mtime >= since)


def collect(dest: Path, files: Sequence[Path], log: Path) -> Path:
    """One archive of the new result files (the device tool brings back only a few files)."""
    dest.mkdir(parents=True, exist_ok=True)
    archive = dest / "gpu_results.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for f in files:
            tar.add(f, arcname=f.name)
    shutil.copy(log, dest / log.name)
    return archive


def slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", name).strip("-")


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    steps = plan(args)
    if args.dry_run:
        for step in steps:
            print(f"# {step.name} (<= {step.timeout_s:.0f} s): {step.what}\n{step.command()}")
        print(f"# {len(steps)} steps, budget {args.budget_s:.0f} s, results in {args.out}")
        if args.collect is not None:
            print(f"# then results + log archived into {args.collect}")
        return 0
    device = cuda_device()
    if device is None:
        print(
            "gpu_check: no CUDA device (torch.cuda.is_available() is False): nothing was run. "
            "Run it on a GPU machine, or --dry-run to see the commands.",
            file=sys.stderr,
        )
        return NO_CUDA_EXIT
    args.out.mkdir(parents=True, exist_ok=True)
    started, began = time.monotonic(), time.time()
    log_path = args.out / "gpu_check_cuda.log"
    done: list[dict[str, Any]] = []
    with log_path.open("w") as log:
        for step in steps:
            left = args.budget_s - (time.monotonic() - started)
            if left < 10:
                done.append({"name": step.name, "command": step.command(), "status": "skipped"})
                continue
            done.append(run_step(step, min(step.timeout_s, left), log))
            print(f"--- {step.name}: {done[-1]['status']} in {done[-1]['seconds']} s", flush=True)
    summary = {
        "benchmark": "gpu_check",
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "device": device,
        "budget_s": args.budget_s,
        "seconds": round(time.monotonic() - started, 1),
        "steps": done,
    }
    path = args.out / "gpu_check_cuda.json"
    path.write_text(json.dumps(summary, indent=2) + "\n")
    print(f"wrote {path} ({device})")
    if args.collect is not None:
        print(f"collected {collect(args.collect, new_results(args.out, began), log_path)}")
    return 0 if all(s["status"] == "passed" for s in done) else 1


if __name__ == "__main__":
    raise SystemExit(main())
