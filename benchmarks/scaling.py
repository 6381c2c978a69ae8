"""Question 5: the 3-head overhead as the backbone grows.

For each backbone shape (the real MiniLM; RoBERTa-base/large and BART-large with random
weights, same compute) the backbone alone and the backbone + 3 heads (two sequence k=64,
one token k=128) run interleaved in one run; overhead = per-round time ratio - 1, next to
the FLOP share the heads add. Encoders compute their embedding in both variants; BART runs
its encoder only in both (generation is a different workload).

    sidetask bench scaling --backbones minilm,roberta-base,roberta-large,bart-large --shapes 1x128
"""

from __future__ import annotations

import gc
from collections.abc import Sequence
from functools import partial
from typing import Any

from benchmarks import common, flops, workload
from benchmarks.shapes import SHAPES, build_backbone
from engine.flags import EnvFlagParser, command_prefix, parse_with_env

NAME = "scaling"
TASKS = 3


def build_parser() -> EnvFlagParser:
    parser = EnvFlagParser(prog="sidetask bench scaling", description=__doc__)
    common.add_common_arguments(parser)
    parser.add_argument("--backbones", default=",".join(SHAPES), help=f"From {SHAPES}.")
    parser.add_argument("--shapes", default="1x128", help="batch x length.")
    return parser


def measure(
    ctx: common.BenchContext, backbones: Sequence[str], shapes: Sequence[tuple[int, int]]
) -> dict[str, Any]:
    rows = []
    for shape in backbones:
        backbone = build_backbone(shape, ctx)
        main = not backbone.is_encoder_decoder
        heads = workload.bench_heads(backbone, TASKS, head_dtype=ctx.head_dtype)
        head_params = sum(h.parameter_count() for h in heads.heads.values())
        backbone_params = sum(p.numel() for p in backbone.model.parameters())
        for batch, length in shapes:
            ids, mask = workload.synthetic_batch(backbone, batch, length)
            base = partial(backbone.forward, ids, mask, None, None, main)
            with_heads = partial(
                workload.run_tasks, backbone, heads, heads.names, ids, mask, main, ctx.kernel
            )
            features_only = partial(
                workload.run_tasks, backbone, heads, heads.names, ids, mask, main, ctx.kernel, False
            )
            times = common.time_interleaved(
                {"backbone": base, "accumulate": features_only, "3 heads": with_heads},
                ctx.repeats,
                ctx.warmup,
                ctx.device,
                ctx.clock,
            )
            ratio = common.paired_ratio(times, "3 heads", "backbone")
            acc_ratio = common.paired_ratio(times, "accumulate", "backbone")
            base_flops = flops.backbone_flops(flops.EncoderShape.of(backbone), batch, length)
            head_flops = sum(
                flops.heads_flops(
                    heads, heads.names, backbone.info.hidden_size, batch, length
                ).values()
            )
            row = {
                "backbone": shape,
                "name": backbone.info.name,
                "num_layers": backbone.info.num_layers,
                "hidden_size": backbone.info.hidden_size,
                "backbone_params": backbone_params,
                "head_params": head_params,
                "batch": batch,
                "length": length,
                "backbone_s": common.summary(times["backbone"]),
                "with_heads_s": common.summary(times["3 heads"]),
                "overhead_pct": {k: (ratio[k] - 1) * 100 for k in ("median", "min", "max")},
                "accumulate_only_overhead_pct": {
                    k: (acc_ratio[k] - 1) * 100 for k in ("median", "min", "max")
                },
                "flop_floor_pct": head_flops / base_flops * 100,
                "raw_s": times.raw(),
            }
            rows.append(row)
            print(
                f"{shape} {batch}x{length}: backbone {row['backbone_s']['median'] * 1000:.1f} ms, "
                f"3 heads {row['overhead_pct']['median']:+.1f}% "
                f"(accumulator alone {row['accumulate_only_overhead_pct']['median']:+.1f}%) "
                f"(floor {row['flop_floor_pct']:.2f}%)",
                flush=True,
            )
        del backbone, heads
        gc.collect()
    return {"tasks": TASKS, "rows": rows}


def plot(payload: dict[str, Any], ctx: common.BenchContext) -> None:
    fig, (ax,) = common.new_figure(1)
    rows = payload["rows"]
    labels = [f"{r['backbone']}\n{r['batch']}x{r['length']}" for r in rows]
    x = list(range(len(rows)))
    med, err = common.median_and_error([r["overhead_pct"] for r in rows])
    acc = [r["accumulate_only_overhead_pct"]["median"] for r in rows]
    ax.bar([i - 0.27 for i in x], med, 0.27, yerr=err, capsize=3, label="3 heads, measured")
    ax.bar(x, acc, 0.27, label="accumulator only, measured")
    ax.bar([i + 0.27 for i in x], [r["flop_floor_pct"] for r in rows], 0.27, label="FLOP floor")
    ax.set_xticks(x, labels, fontsize=8)
    ax.set_ylabel("3-head overhead vs backbone alone (%)")
    ax.grid(alpha=0.3, axis="y")
    ax.legend(fontsize=8)
    title = f"3-head overhead by backbone ({ctx.device.type}, {ctx.threads} threads)"
    common.save_figure(fig, common.plot_path(NAME, ctx), title)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_with_env(build_parser(), argv, command_prefix("bench", "scaling"))
    ctx = common.setup(args)
    backbones = [b.strip() for b in args.backbones.split(",") if b.strip()]
    unknown = [b for b in backbones if b not in SHAPES]
    if unknown:
        raise SystemExit(f"unknown backbone shape(s) {unknown}; choose from {SHAPES}")
    payload = measure(ctx, backbones, common.parse_shapes(args.shapes))
    path = common.write_result(NAME, ctx, payload)
    plot(payload, ctx)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
