"""torch.compile of the backbone (``--compile``) vs eager: start-up cost, speed, same answers.

Two engines built the way the server builds them (``engine.loading.build_engine``), one
with ``compile=True`` (each layer compiled, warmed up before it would say ready), one eager;
start-up seconds of each; then ``Engine.analyze`` on the serve benchmark's texts for
{embedding} and {every head + embedding}, batches of ``--batch``, interleaved rounds on the
benchmark clock; and the largest embedding difference between the two.

    sidetask bench compile                      # CPU, packaged MiniLM, shipped heads
    sidetask bench compile --device cuda
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from benchmarks import common, loadgen
from engine.flags import EnvFlagParser, command_prefix, parse_with_env

NAME = "compile"


def build_parser() -> EnvFlagParser:
    p = EnvFlagParser(prog="sidetask bench compile", description=__doc__)
    common.add_common_arguments(p, repeats=5)
    p.add_argument("--batch", type=int, default=32, help="Texts per engine call.")
    p.add_argument("--heads-dir", type=Path, default=None, help="Default: the shipped heads.")
    return p


def engines(ctx: common.BenchContext, args: argparse.Namespace) -> dict[str, Any]:
    from engine.loading import build_engine
    from engine.settings import EngineSettings

    out: dict[str, Any] = {}
    for name, compiled in (("eager", False), ("compiled", True)):
        started = time.perf_counter()
        settings = EngineSettings(
            backbone=args.backbone,
            heads_dir=None if args.heads_dir is None else [args.heads_dir],
            device=str(ctx.device),
            dtype=str(ctx.dtype).removeprefix("torch."),
            threads=ctx.threads,
            compile=compiled,
        )
        out[name] = (build_engine(settings), time.perf_counter() - started)
    return out


def measure(ctx: common.BenchContext, args: argparse.Namespace) -> dict[str, Any]:
    built = engines(ctx, args)
    texts = loadgen.sentence_pool(loadgen.SST2_DEV, limit=args.batch * 4)[: args.batch]
    eager = built["eager"][0]
    heads = common.workload_heads(eager.heads.names)
    task_sets = {"embedding": ["embedding"], "all": [*heads, "embedding"]}
    variants = {
        f"{engine} {name}": (lambda e=built[engine][0], t=tasks: e.analyze(texts, t))
        for name, tasks in task_sets.items()
        for engine in ("eager", "compiled")
    }
    times = common.time_interleaved(variants, ctx.repeats, ctx.warmup, ctx.device, ctx.clock)
    a = torch.tensor([r["embedding"] for r in eager.analyze(texts, ["embedding"]).results])
    b = torch.tensor(
        [r["embedding"] for r in built["compiled"][0].analyze(texts, ["embedding"]).results]
    )
    return {
        "question": "torch.compile of the backbone layers vs eager (engine, start-up, answers)",
        "texts": len(texts),
        "startup_s": {name: seconds for name, (_, seconds) in built.items()},
        "texts_per_s": {n: common.summary([len(texts) / t for t in v]) for n, v in times.items()},
        "speedup_compiled_over_eager": {
            name: common.paired_ratio(times, f"eager {name}", f"compiled {name}")
            for name in task_sets
        },
        "max_abs_embedding_diff": float((a - b).abs().max()),
        "raw_s": times.raw(),
    }


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_with_env(build_parser(), argv, command_prefix("bench", "compile"))
    ctx = common.setup(args)
    payload = measure(ctx, args)
    path = common.write_result(NAME, ctx, payload)
    for name, ratio in payload["speedup_compiled_over_eager"].items():
        print(
            f"{name}: compiled {ratio['median']:.2f}x eager [{ratio['min']:.2f}-{ratio['max']:.2f}]"
        )
    print(f"start-up s: {payload['startup_s']}; max |diff| {payload['max_abs_embedding_diff']:.2e}")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
