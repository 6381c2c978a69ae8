"""The accumulator's projection in bfloat16 vs float32 on CPU: time per layer.

What ``accumulator_dtype=auto`` rests on: on CPUs with bf16 dot products (AVX512-BF16 or
AMX) the projection GELU(Z) @ W of one layer, and the whole per-layer update (projection,
per-task LayerNorm, scaled add, in float32), for the MiniLM backbone's shapes (H = 384) and
the shipped heads' Σk = 256 (k = 64, 64, 128), at a few row counts (rows = texts x tokens:
1,600 is 32 texts of 50 tokens). Interleaved rounds (ABBA), process CPU time, median
[min-max] and the per-round ratio.

    python -m benchmarks.accumulator_dtype            # writes results/accumulator_dtype_cpu.json
    sidetask bench accumulator_dtype --rows 16,1600 --repeats 7

The JSON records whether this CPU has bf16 dot products: elsewhere bf16 is slower.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F

from benchmarks import common
from engine.flags import EnvFlagParser, command_prefix, parse_with_env
from models.hardware import cpu_has_amx_bf16, cpu_has_fast_bf16
from models.kernels.accumulate import Segment, accumulate_torch

NAME = "accumulator_dtype"
HIDDEN = 384  # all-MiniLM-L6-v2
TASK_KS = (64, 64, 128)  # the shipped heads: sentiment, cola, ner
INNER = 20  # back-to-back calls per timed round (one call at 16 rows is ~0.1 ms)


def build_parser() -> EnvFlagParser:
    p = EnvFlagParser(prog="sidetask bench accumulator_dtype", description=__doc__)
    common.add_common_arguments(p, repeats=7)
    p.add_argument("--rows", default="16,400,1600", help="Rows per layer (texts x tokens).")
    return p


def _case(rows: int, dtype: torch.dtype) -> tuple[Any, ...]:
    gen = torch.Generator().manual_seed(rows)
    z = torch.randn(rows, HIDDEN, generator=gen)
    weight = (torch.randn(sum(TASK_KS), HIDDEN, generator=gen) / HIDDEN**0.5).to(dtype)
    segments, offset = [], 0
    for k in TASK_KS:
        segments.append(Segment(offset, offset, k, 1 / len(TASK_KS)))
        offset += k
    return torch.zeros(rows, offset), z, weight, tuple(segments)


def measure(rows: int, ctx: common.BenchContext) -> dict[str, Any]:
    cases = {name: _case(rows, common.DTYPES[name]) for name in ("float32", "bfloat16")}

    def projection(name: str) -> None:
        _, z, weight, _ = cases[name]
        for _ in range(INNER):
            F.gelu(z).to(weight.dtype) @ weight.t()

    def update(name: str) -> None:
        acc, z, weight, segments = cases[name]
        for _ in range(INNER):
            accumulate_torch(acc, z, weight, segments)

    out: dict[str, Any] = {"rows": rows}
    for part, fn in (("projection", projection), ("update", update)):
        variants = {name: (lambda fn=fn, name=name: fn(name)) for name in cases}
        with torch.inference_mode():
            times = common.time_interleaved(
                variants, ctx.repeats, ctx.warmup, ctx.device, ctx.clock
            )
        per_call = {n: [t / INNER * 1000 for t in times[n]] for n in cases}
        out[part] = {
            "ms": {n: common.summary(v) for n, v in per_call.items()},
            "float32_over_bfloat16": common.paired_ratio(per_call, "float32", "bfloat16"),
        }
    return out


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_with_env(build_parser(), argv, command_prefix("bench", NAME))
    ctx = common.setup(args)
    if ctx.device.type != "cpu":
        raise SystemExit("this benchmark is about CPUs (--device cpu)")
    rows = [measure(n, ctx) for n in common.parse_ints(args.rows)]
    payload = {
        "question": "accumulator projection in bfloat16 vs float32 on CPU, per layer",
        "shape": {"hidden": HIDDEN, "task_ks": list(TASK_KS)},
        "inner_calls_per_round": INNER,
        "cpu_has_fast_bf16": cpu_has_fast_bf16(),
        "cpu_has_amx_bf16": cpu_has_amx_bf16(),
        "results": rows,
    }
    path = common.write_result(NAME, ctx, payload)
    for r in rows:
        p, u = r["projection"], r["update"]
        print(
            f"rows {r['rows']:5d}: projection {p['ms']['float32']['median']:.3f} -> "
            f"{p['ms']['bfloat16']['median']:.3f} ms "
            f"({p['float32_over_bfloat16']['median']:.2f}x), update "
            f"{u['ms']['float32']['median']:.3f} -> {u['ms']['bfloat16']['median']:.3f} ms "
            f"({u['float32_over_bfloat16']['median']:.2f}x)"
        )
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
