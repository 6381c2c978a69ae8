"""Question 1: what do 1, 3, 8, 16 heads add to one backbone pass?

Variants, interleaved in one run for every batch x length: the backbone alone (its main task,
the embedding) and the same pass with N heads streaming (accumulator + head modules; kinds
mixed, k=64 sequence / k=128 token). Overhead = per-round time ratio - 1. The floor is the
FLOP share the heads add (benchmarks/flops.py: matmuls and attention), so the gap between
the two is the price of running heads as separate small ops.

    sidetask bench overhead --shapes 1x32,8x128,32x128,8x512 --heads 1,3,8,16
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from typing import Any

from benchmarks import common, flops, workload
from benchmarks.shapes import load_backbone
from engine.flags import EnvFlagParser, command_prefix, parse_with_env

NAME = "overhead"


def build_parser() -> EnvFlagParser:
    parser = EnvFlagParser(prog="sidetask bench overhead", description=__doc__)
    common.add_common_arguments(parser)
    parser.add_argument("--shapes", default="1x32,8x128,32x128,8x512", help="batch x length.")
    parser.add_argument("--heads", default="1,3,8,16", help="Head counts to compare.")
    return parser


def _pct(ratio: dict[str, Any]) -> dict[str, float]:
    return {key: (ratio[key] - 1.0) * 100 for key in ("median", "min", "max")}


def measure(
    ctx: common.BenchContext, shapes: Sequence[tuple[int, int]], counts: Sequence[int]
) -> dict[str, Any]:
    backbone = load_backbone(ctx)
    heads = workload.bench_heads(backbone, max(counts), head_dtype=ctx.head_dtype)
    names = heads.names
    rows = []
    for batch, length in shapes:
        ids, mask = workload.synthetic_batch(backbone, batch, length)
        base = partial(backbone.forward, ids, mask)
        variants: dict[str, Any] = {"backbone": base}
        for n in counts:
            variants[f"{n}"] = partial(
                workload.run_tasks, backbone, heads, names[:n], ids, mask, True, ctx.kernel
            )
        times = common.time_interleaved(variants, ctx.repeats, ctx.warmup, ctx.device, ctx.clock)
        base_flops = flops.backbone_flops(flops.EncoderShape.of(backbone), batch, length)
        per_head = flops.heads_flops(heads, names, backbone.info.hidden_size, batch, length)
        row: dict[str, Any] = {
            "batch": batch,
            "length": length,
            "backbone_s": common.summary(times["backbone"]),
            "backbone_flops": base_flops,
            "heads": {},
            "raw_s": times.raw(),
        }
        for n in counts:
            head_flops = sum(per_head[name] for name in names[:n])
            row["heads"][str(n)] = {
                "kinds": [workload.head_kind(i) for i in range(n)],
                "time_s": common.summary(times[f"{n}"]),
                "overhead_pct": _pct(common.paired_ratio(times, f"{n}", "backbone")),
                "flop_floor_pct": head_flops / base_flops * 100,
            }
        rows.append(row)
        print(_row_line(row), flush=True)
    return {
        "backbone": backbone.info.name,
        "num_layers": backbone.info.num_layers,
        "hidden_size": backbone.info.hidden_size,
        "variants": "backbone alone (embedding) vs backbone + N heads in the same pass",
        "rows": rows,
    }


def _row_line(row: dict[str, Any]) -> str:
    parts = [
        f"{n} heads {h['overhead_pct']['median']:+.1f}% (floor {h['flop_floor_pct']:.1f}%)"
        for n, h in row["heads"].items()
    ]
    base = row["backbone_s"]["median"] * 1000
    return f"{row['batch']}x{row['length']}: backbone {base:.1f} ms; " + ", ".join(parts)


def plot(payload: dict[str, Any], ctx: common.BenchContext) -> None:
    fig, (ax,) = common.new_figure(1)
    for i, row in enumerate(payload["rows"]):
        counts = [int(n) for n in row["heads"]]
        med, err = common.median_and_error([row["heads"][str(n)]["overhead_pct"] for n in counts])
        floor = [row["heads"][str(n)]["flop_floor_pct"] for n in counts]
        color = f"C{i}"
        label = f"{row['batch']}x{row['length']}"
        ax.errorbar(counts, med, yerr=err, marker="o", color=color, label=label, capsize=3)
        ax.plot(counts, floor, linestyle="--", color=color, alpha=0.6)
    ax.set_xlabel("heads in the same pass (dashed: FLOP floor)")
    ax.set_ylabel("time overhead vs backbone alone (%)")
    ax.set_xscale("log", base=2)
    ax.set_yscale("symlog", linthresh=10)
    ax.grid(alpha=0.3)
    ax.legend(title="batch x length", fontsize=8)
    title = f"Head overhead, {payload['backbone']} ({ctx.device.type}, {ctx.threads} threads)"
    common.save_figure(fig, common.plot_path(NAME, ctx), title)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_with_env(build_parser(), argv, command_prefix("bench", "overhead"))
    ctx = common.setup(args)
    payload = measure(ctx, common.parse_shapes(args.shapes), common.parse_ints(args.heads))
    path = common.write_result(NAME, ctx, payload)
    plot(payload, ctx)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
