"""Question 2: three tasks from one pass vs one model per task (three passes).

Variants, interleaved in one run: sidetask's single backbone pass feeding three heads
(sentiment-like, CoLA-like sequence heads k=64, an NER-like token head k=128) vs the
alternative of one model per task: the backbone run three times, each pass feeding its one
head. Heads put weight on every layer, so neither variant may stop early. Batch 1 gives the
latency; a larger batch gives the throughput.

    sidetask bench one_pass --shapes 1x128,32x128
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from typing import Any

from torch import Tensor

from benchmarks import common, workload
from benchmarks.shapes import load_backbone
from engine.flags import EnvFlagParser, command_prefix, parse_with_env
from heads.registry import HeadSet
from models.backbone import Backbone

NAME = "one_pass"
TASKS = 3


def build_parser() -> EnvFlagParser:
    parser = EnvFlagParser(prog="sidetask bench one_pass", description=__doc__)
    common.add_common_arguments(parser)
    parser.add_argument("--shapes", default="1x128,32x128", help="batch x length.")
    return parser


def _one_pass(
    backbone: Backbone, heads: HeadSet, names: list[str], ids: Tensor, mask: Tensor, kernel: str
) -> None:
    workload.run_tasks(backbone, heads, names, ids, mask, False, kernel)


def _three_passes(
    backbone: Backbone, heads: HeadSet, names: list[str], ids: Tensor, mask: Tensor, kernel: str
) -> None:
    for name in names:
        workload.run_tasks(backbone, heads, [name], ids, mask, False, kernel)


def measure(ctx: common.BenchContext, shapes: Sequence[tuple[int, int]]) -> dict[str, Any]:
    backbone = load_backbone(ctx)
    heads = workload.bench_heads(backbone, TASKS, head_dtype=ctx.head_dtype)
    names = heads.names
    rows = []
    for batch, length in shapes:
        ids, mask = workload.synthetic_batch(backbone, batch, length)

        times = common.time_interleaved(
            {
                "one_pass": partial(_one_pass, backbone, heads, names, ids, mask, ctx.kernel),
                "three_passes": partial(
                    _three_passes, backbone, heads, names, ids, mask, ctx.kernel
                ),
            },
            ctx.repeats,
            ctx.warmup,
            ctx.device,
            ctx.clock,
        )
        row = {
            "batch": batch,
            "length": length,
            "one_pass_s": common.summary(times["one_pass"]),
            "three_passes_s": common.summary(times["three_passes"]),
            "speedup": common.paired_ratio(times, "three_passes", "one_pass"),
            "one_pass_seq_per_s": batch / common.summary(times["one_pass"])["median"],
            "three_passes_seq_per_s": batch / common.summary(times["three_passes"])["median"],
            "raw_s": times.raw(),
        }
        rows.append(row)
        print(
            f"{batch}x{length}: one pass {row['one_pass_s']['median'] * 1000:.1f} ms, "
            f"three passes {row['three_passes_s']['median'] * 1000:.1f} ms, "
            f"speed-up {row['speedup']['median']:.2f}x",
            flush=True,
        )
    return {
        "backbone": backbone.info.name,
        "tasks": [f"{n} ({heads.heads[n].kind}, k={heads.heads[n].manifest.k})" for n in names],
        "variants": "one pass feeding 3 heads vs 3 passes feeding 1 head each",
        "rows": rows,
    }


def plot(payload: dict[str, Any], ctx: common.BenchContext) -> None:
    fig, (ax_t, ax_s) = common.new_figure(2)
    labels = [f"{r['batch']}x{r['length']}" for r in payload["rows"]]
    x = list(range(len(labels)))
    one = [r["one_pass_seq_per_s"] for r in payload["rows"]]
    three = [r["three_passes_seq_per_s"] for r in payload["rows"]]
    width = 0.38
    ax_t.bar([i - width / 2 for i in x], one, width, label="one pass, 3 heads")
    ax_t.bar([i + width / 2 for i in x], three, width, label="3 passes (a model per task)")
    ax_t.set_xticks(x, labels)
    ax_t.set_ylabel("sequences / s (median)")
    ax_t.set_xlabel("batch x length")
    ax_t.legend(fontsize=8)
    med, err = common.median_and_error([r["speedup"] for r in payload["rows"]])
    ax_s.bar(x, med, 0.5, yerr=err, capsize=4, color="C2")
    ax_s.axhline(3.0, linestyle="--", color="gray", label="ideal 3x")
    ax_s.set_xticks(x, labels)
    ax_s.set_ylabel("speed-up of one pass (x)")
    ax_s.set_xlabel("batch x length")
    ax_s.legend(fontsize=8)
    title = f"One pass vs three, {payload['backbone']} ({ctx.device.type}, {ctx.threads} threads)"
    common.save_figure(fig, common.plot_path(NAME, ctx), title)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_with_env(build_parser(), argv, command_prefix("bench", "one_pass"))
    ctx = common.setup(args)
    payload = measure(ctx, common.parse_shapes(args.shapes))
    path = common.write_result(NAME, ctx, payload)
    plot(payload, ctx)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
