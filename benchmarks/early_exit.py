"""Question 4: early exit and layer skipping for side-task-only requests.

Three heads whose layer weights are ~zero (exactly zero after the cutoff) above layer l:
the accumulator plan ends at l, so the backbone stops after it. Variants, interleaved in one
run: heads over every layer (the whole backbone runs), heads cut at each l, heads reading
every second layer only (no early exit, half the accumulator updates), and the backbone
alone. Reported: layers run and the time ratio to the all-layers variant.

    sidetask bench early_exit --shapes 8x128 --cuts 1,2,3,4,5
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from typing import Any

from benchmarks import common, workload
from benchmarks.shapes import load_backbone
from engine.flags import EnvFlagParser, command_prefix, parse_with_env
from models.backbone import Backbone

NAME = "early_exit"
TASKS = 3
CUTOFF = 5e-3


def build_parser() -> EnvFlagParser:
    parser = EnvFlagParser(prog="sidetask bench early_exit", description=__doc__)
    common.add_common_arguments(parser)
    parser.add_argument("--shapes", default="8x128", help="batch x length.")
    parser.add_argument("--cuts", default="", help="Last layers heads need; default a spread.")
    return parser


def cut_logits(num_states: int, last: int) -> list[float]:
    """Layer logits whose softmax (alpha 64) is ~zero above ``last``; the cutoff zeroes it."""
    return [0.01 * ((i * 7) % 5) if i <= last else -1.0 for i in range(num_states)]


def sparse_logits(num_states: int) -> list[float]:
    """Weight on even hidden states only (the last one kept, so nothing stops early)."""
    return [0.0 if i % 2 == 0 or i == num_states - 1 else -1.0 for i in range(num_states)]


def default_cuts(num_layers: int) -> list[int]:
    step = max(1, num_layers // 6)
    return list(range(step, num_layers, step))


def _variants(
    backbone: Backbone, cuts: Sequence[int], ids: Any, mask: Any, kernel: str
) -> dict[str, tuple[Any, int]]:
    """name -> (callable, hidden states the accumulator reads; 0 for the backbone alone)."""
    info = backbone.info
    out: dict[str, tuple[Any, int]] = {}
    configs: list[tuple[str, list[float] | None, float]] = [("all layers", None, 0.0)]
    configs += [(f"cut at {c}", cut_logits(info.num_states, c), CUTOFF) for c in cuts]
    configs.append(("every 2nd layer", sparse_logits(info.num_states), CUTOFF))
    for name, logits, cutoff in configs:
        heads = workload.bench_heads(backbone, TASKS, layer_logits=logits, cutoff=cutoff)
        plan = heads.plan_for(heads.names)
        fn = partial(workload.run_tasks, backbone, heads, heads.names, ids, mask, False, kernel)
        out[name] = (fn, len(plan.active_layers))
    out["backbone alone"] = (partial(backbone.forward, ids, mask, None, None, False), 0)
    return out


def measure(
    ctx: common.BenchContext, shapes: Sequence[tuple[int, int]], cuts: Sequence[int]
) -> dict[str, Any]:
    backbone = load_backbone(ctx)
    cuts = list(cuts) or default_cuts(backbone.info.num_layers)
    rows = []
    for batch, length in shapes:
        ids, mask = workload.synthetic_batch(backbone, batch, length)
        variants = _variants(backbone, cuts, ids, mask, ctx.kernel)
        times = common.time_interleaved(
            {n: fn for n, (fn, _) in variants.items()},
            ctx.repeats,
            ctx.warmup,
            ctx.device,
            ctx.clock,
        )
        results = {}
        for name, (fn, active) in variants.items():
            layers_run = fn().layers_run
            ratio = common.paired_ratio(times, name, "all layers")
            results[name] = {
                "layers_run": layers_run,
                "states_read": active,
                "time_s": common.summary(times[name]),
                "time_vs_all_layers": ratio,
                "time_saved_pct": (1 - ratio["median"]) * 100,
            }
            print(
                f"{batch}x{length} {name}: {layers_run} layers, "
                f"{ratio['median']:.2f}x the all-layers time",
                flush=True,
            )
        rows.append({"batch": batch, "length": length, "variants": results, "raw_s": times.raw()})
    return {
        "backbone": backbone.info.name,
        "num_layers": backbone.info.num_layers,
        "tasks": TASKS,
        "cutoff": CUTOFF,
        "request": "side tasks only (no embedding), so the backbone may stop early",
        "rows": rows,
    }


def plot(payload: dict[str, Any], ctx: common.BenchContext) -> None:
    fig, axes = common.new_figure(len(payload["rows"]))
    for ax, row in zip(axes, payload["rows"], strict=True):
        names = list(row["variants"])
        med, err = common.median_and_error(
            [row["variants"][n]["time_vs_all_layers"] for n in names]
        )
        bars = ax.bar(range(len(names)), med, yerr=err, capsize=3, color="C0")
        for bar, n in zip(bars, names, strict=True):
            ax.annotate(
                f"{row['variants'][n]['layers_run']} L",
                (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                ha="center",
                va="bottom",
                fontsize=7,
            )
        ax.set_xticks(range(len(names)), names, rotation=35, ha="right", fontsize=8)
        ax.set_ylabel("time vs heads on all layers")
        ax.set_title(f"{row['batch']}x{row['length']} (labels: layers run)", fontsize=9)
        ax.grid(alpha=0.3, axis="y")
    title = f"Early exit, {payload['backbone']} ({ctx.device.type}, {ctx.threads} threads)"
    common.save_figure(fig, common.plot_path(NAME, ctx), title)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_with_env(build_parser(), argv, command_prefix("bench", "early_exit"))
    ctx = common.setup(args)
    payload = measure(ctx, common.parse_shapes(args.shapes), common.parse_ints(args.cuts))
    path = common.write_result(NAME, ctx, payload)
    plot(payload, ctx)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
