"""Q9: how many tokens should one micro-batch hold on this device?

The scheduler runs one micro-batch (one backbone pass, every requested head) per step; a
small request that arrives during a step waits for it, so a step should be no longer than
what the device needs to reach its best cost per window. This measures the cost per window
of ``Engine.run_step`` against the rows in the step, for full 256-token windows (IMDB
reviews) and for sentence-length windows (SST-2 dev), all four tasks, rounds interleaved.

    python -m benchmarks.step_size --threads 2          # about a minute on 2 cores
"""

from __future__ import annotations

import argparse
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks import common
from benchmarks.live_server import write_random_heads
from benchmarks.scheduling import reviews, sentences
from engine.flags import EnvFlagParser, command_prefix, parse_with_env


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = EnvFlagParser(prog="sidetask bench step_size", description=__doc__)
    common.add_common_arguments(p, repeats=5)
    p.add_argument("--rows", default="1,2,4,8,16,32", help="Windows per step to measure.")
    p.add_argument("--data-dir", type=Path, default=Path("../shared/data"))
    return parse_with_env(p, argv, command_prefix("bench", "step_size"))


def windows(engine: Any, texts: Sequence[str], length: int | None) -> list[Any]:
    """Windows of ``texts`` (issue 20's four tasks); only full ones when ``length`` is given."""
    from engine.core import AnalyzeRequest

    items = engine.prepare(AnalyzeRequest(list(texts), common.workload_tasks(engine))).windows
    if length is not None:
        return [it for it in items if it.length == length]
    return sorted(items, key=lambda it: it.length)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    ctx = common.setup(args)
    from engine.loading import build_engine
    from engine.settings import EngineSettings

    values: dict[str, Any] = {"threads": args.threads}
    with tempfile.TemporaryDirectory() as tmp:
        if args.backbone:  # another backbone: random heads of the method's sizes
            heads = write_random_heads(args.backbone, Path(tmp) / "heads")
            values.update(backbone=args.backbone, heads_dir=[heads])
        engine = build_engine(EngineSettings(**values))
    full = engine.backbone.info.max_length
    rows = common.parse_ints(args.rows)
    pools = {
        "long": windows(engine, [" ".join(reviews(args.data_dir)[:80])], full),
        "short": windows(engine, sentences(args.data_dir)[: max(rows)], None),
    }
    payload: dict[str, Any] = {"window_tokens": {}, "ms_per_window": {}}
    for kind, pool in pools.items():
        variants = {f"{n}": (lambda n=n, pool=pool: engine.run_step(pool[:n])) for n in rows}
        times = common.time_interleaved(variants, args.repeats, args.warmup, ctx.device, ctx.clock)
        payload["window_tokens"][kind] = {
            str(n): sum(it.length for it in pool[:n]) / n for n in rows
        }
        payload["ms_per_window"][kind] = {
            str(n): common.summary([t * 1000 / n for t in times[str(n)]]) for n in rows
        }
        payload.setdefault("raw", {})[kind] = times.raw()
    path = common.write_result("step_size", ctx, payload)
    fig, (ax,) = common.new_figure(1)
    for kind in pools:
        med, err = common.median_and_error([payload["ms_per_window"][kind][str(n)] for n in rows])
        ax.errorbar(rows, med, yerr=err, marker="o", label=f"{kind} windows")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("windows per micro-batch")
    ax.set_ylabel(f"ms per window ({ctx.clock} clock)")
    ax.legend()
    plot = common.plot_path("step_size", ctx)
    common.save_figure(fig, plot, f"cost per window vs step size, {ctx.threads} threads")
    print(f"wrote {path} and {plot}")
    for kind in pools:
        line = ", ".join(
            f"{n}: {payload['ms_per_window'][kind][str(n)]['median']:.1f}" for n in rows
        )
        print(f"{kind} ms/window by rows: {line}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
