"""Shared benchmark plumbing: pinned threads, interleaved timing, statistics, result files.

Every benchmark measures its variants side by side in one run, interleaved (ABBA order), so
a noisy shared machine slows all variants alike; ratios are taken per round, then the
median (with min/max) is reported. Results go to ``benchmarks/results/<name>_<device>.json``
with the machine, library versions and the exact command, next to a PNG plot.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import statistics
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch

RESULTS_DIR = Path(__file__).resolve().parent / "results"
DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
#: Issue 20's workload, "embedding + 3 heads": the heads shipped when it was set. The shipped
#: folder also holds sentiment-long since issue 19.3; benchmarks keep asking for these three so
#: that their results keep one meaning.
WORKLOAD_HEADS = ("sentiment", "cola", "ner")


def workload_heads(loaded: Sequence[str]) -> list[str]:
    """The loaded heads a benchmark asks for, in loaded order: issue 20's three where all of
    them are loaded (the shipped heads, or random ones named alike), else every loaded head
    (a user's own --heads-dir)."""
    chosen = [name for name in loaded if name in WORKLOAD_HEADS]
    return chosen if len(chosen) == len(WORKLOAD_HEADS) else list(loaded)


def workload_tasks(engine: Any) -> list[str]:
    """Issue 20's "all tasks": the workload heads and the engine's main task."""
    return [*workload_heads(engine.heads.names), engine.main_task]


@dataclass(frozen=True)
class BenchContext:
    """What every benchmark was asked to run on, resolved once."""

    device: torch.device
    dtype: torch.dtype
    threads: int
    repeats: int
    warmup: int
    out_dir: Path
    backbone: str | None
    kernel: str
    clock: str = "wall"
    shape: str = "minilm"
    head_dtype: torch.dtype | None = None  # None: the backbone's (float32 head layers)

    @property
    def tag(self) -> str:
        """Result file suffix: [shape_]device[_dtype][_heads-dtype] (shape unless MiniLM,
        dtype unless fp32, head dtype when set)."""
        prefix = "" if self.shape == "minilm" else self.shape + "_"
        suffix = "" if self.dtype == torch.float32 else "_" + str(self.dtype).split(".")[-1]
        if self.head_dtype is not None:
            suffix += "_heads-" + str(self.head_dtype).split(".")[-1]
        return prefix + self.device.type + suffix


def add_common_arguments(parser: argparse.ArgumentParser, repeats: int = 5) -> None:
    """Flags every benchmark shares."""
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N.")
    parser.add_argument("--dtype", default="float32", choices=sorted(DTYPES))
    parser.add_argument(
        "--threads", type=int, default=1, help="torch CPU threads, pinned (default 1)."
    )
    parser.add_argument("--repeats", type=int, default=repeats, help="Timed rounds (>= 5).")
    parser.add_argument("--warmup", type=int, default=1, help="Untimed rounds first.")
    parser.add_argument(
        "--backbone", default=None, help="Backbone folder; default the packaged MiniLM."
    )
    parser.add_argument(
        "--shape",
        default="minilm",
        choices=["minilm", "roberta-base", "roberta-large", "bart-large"],
        help="Backbone shape: minilm = --backbone or the packaged MiniLM; others random weights.",
    )
    parser.add_argument("--kernel", default="auto", choices=["auto", "torch", "triton"])
    parser.add_argument(
        "--head-dtype",
        default="same",
        choices=["same", *sorted(DTYPES)],
        help="Heads' compute dtype (accumulator projections and head layers); same = the "
        "accumulator in the backbone dtype with float32 head layers (the server's auto).",
    )
    parser.add_argument("--out", type=Path, default=RESULTS_DIR, help="Results folder.")
    parser.add_argument(
        "--clock",
        default="auto",
        choices=["auto", "wall", "cpu"],
        help="What ratios use: wall time, or process CPU time (robust to other processes "
        "on a shared CPU); auto = cpu on CPU, wall on CUDA. Both are recorded.",
    )


def setup(args: argparse.Namespace) -> BenchContext:
    """Pin threads, go offline, seed; refuse half-precision on CPU."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    device = torch.device(args.device)
    dtype = DTYPES[args.dtype]
    if device.type == "cpu" and dtype == torch.float16:
        raise SystemExit("float16 needs --device cuda; on CPU use float32 or bfloat16")
    clock = getattr(args, "clock", "auto")
    if clock == "auto" or device.type == "cuda":
        clock = "cpu" if device.type == "cpu" else "wall"
    return BenchContext(
        device,
        dtype,
        args.threads,
        args.repeats,
        args.warmup,
        args.out,
        args.backbone,
        args.kernel,
        clock,
        getattr(args, "shape", "minilm"),
        None if getattr(args, "head_dtype", "same") == "same" else DTYPES[args.head_dtype],
    )


def server_head_dtype(ctx: BenchContext) -> str:
    """``sidetask serve --head-dtype`` for a benchmark's server: ``same`` means ``auto``."""
    return "auto" if ctx.head_dtype is None else str(ctx.head_dtype).removeprefix("torch.")


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class Timings(dict[str, list[float]]):
    """Seconds per call by variant on the chosen clock; ``wall`` and ``cpu`` keep both clocks.

    CPU time (``time.process_time``) does not advance while other processes hold the cores,
    so on a shared CPU it measures the work; with one pinned thread it equals wall time on
    an idle machine. On CUDA only wall time means anything.
    """

    def __init__(self, names: Sequence[str], clock: str) -> None:
        super().__init__({n: [] for n in names})
        self.clock = clock
        self.wall: dict[str, list[float]] = {n: [] for n in names}
        self.cpu: dict[str, list[float]] = {n: [] for n in names}

    def add(self, name: str, wall: float, cpu: float) -> None:
        self.wall[name].append(wall)
        self.cpu[name].append(cpu)
        self[name].append(cpu if self.clock == "cpu" else wall)

    def raw(self) -> dict[str, Any]:
        return {"clock": self.clock, "wall": self.wall, "cpu": self.cpu}


def time_interleaved(
    variants: Mapping[str, Callable[[], object]],
    repeats: int,
    warmup: int,
    device: torch.device,
    clock: str = "wall",
) -> Timings:
    """Seconds per call for each variant, rounds in ABBA order; warm-up rounds dropped."""
    names = list(variants)
    times = Timings(names, clock)
    for r in range(warmup + repeats):
        order = names if r % 2 == 0 else names[::-1]
        for name in order:
            synchronize(device)
            start, cpu_start = time.perf_counter(), time.process_time()
            variants[name]()
            synchronize(device)
            if r >= warmup:
                times.add(name, time.perf_counter() - start, time.process_time() - cpu_start)
    return times


def summary(values: Sequence[float]) -> dict[str, Any]:
    """Median with min/max: robust to the odd slow round on a shared machine."""
    return {
        "median": statistics.median(values),
        "min": min(values),
        "max": max(values),
        "n": len(values),
        "values": list(values),
    }


def median_and_error(
    stats: Sequence[Mapping[str, Any]],
) -> tuple[list[float], list[list[float]]]:
    """Medians and matplotlib's ``yerr`` ([below], [above]) from :func:`summary` dicts."""
    med = [float(s["median"]) for s in stats]
    below = [m - s["min"] for m, s in zip(med, stats, strict=True)]
    above = [s["max"] - m for m, s in zip(med, stats, strict=True)]
    return med, [below, above]


def paired_ratio(times: Mapping[str, Sequence[float]], num: str, den: str) -> dict[str, Any]:
    """Per-round ratio num/den (same round, so drift cancels), summarised."""
    return summary([a / b for a, b in zip(times[num], times[den], strict=True)])


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine_info(ctx: BenchContext) -> dict[str, Any]:
    """Where the numbers come from: CPU, cores, threads, accelerator, library versions."""
    import transformers

    info: dict[str, Any] = {
        "cpu": cpu_model(),
        "logical_cores": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "torch_threads": torch.get_num_threads(),
        "load_average_at_start": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "device": str(ctx.device),
        "dtype": str(ctx.dtype).split(".")[-1],
    }
    if ctx.device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(ctx.device)
    return info


def command_line() -> str:
    """The exact command as typed (``sidetask bench ...`` or ``python -m benchmarks.x ...``)."""
    prog = Path(sys.argv[0]).name
    if prog in {"__main__.py", "-m"} or prog.endswith(".py"):
        return shlex.join([sys.executable, *sys.argv])
    return shlex.join([prog, *sys.argv[1:]])


def write_result(name: str, ctx: BenchContext, payload: Mapping[str, Any]) -> Path:
    """``<out>/<name>_<tag>.json`` with machine, versions and command around the payload."""
    ctx.out_dir.mkdir(parents=True, exist_ok=True)
    record = {
        "benchmark": name,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": command_line(),
        "machine": machine_info(ctx),
        "settings": {
            "threads": ctx.threads,
            "repeats": ctx.repeats,
            "warmup": ctx.warmup,
            "order": "interleaved ABBA, ratios per round",
            "clock": ctx.clock,
            "kernel": ctx.kernel,
            "head_dtype": "same" if ctx.head_dtype is None else str(ctx.head_dtype),
        },
        **payload,
    }
    path = ctx.out_dir / f"{name}_{ctx.tag}.json"
    path.write_text(json.dumps(record, indent=2) + "\n")
    return path


def plot_path(name: str, ctx: BenchContext) -> Path:
    ctx.out_dir.mkdir(parents=True, exist_ok=True)
    return ctx.out_dir / f"{name}_{ctx.tag}.png"


def new_figure(ncols: int = 1) -> Any:
    """A headless matplotlib figure (Agg), one row of ``ncols`` panels."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, ncols, figsize=(5.2 * ncols, 4.0), squeeze=False)
    return fig, list(axes[0])


def save_figure(fig: Any, path: Path, title: str) -> None:
    import matplotlib.pyplot as plt

    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def parse_shapes(text: str) -> list[tuple[int, int]]:
    """``"1x32,8x128"`` -> [(1, 32), (8, 128)]."""
    shapes = []
    for part in text.split(","):
        b, t = part.lower().split("x")
        shapes.append((int(b), int(t)))
    return shapes


def parse_ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]
