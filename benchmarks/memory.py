"""Question 3: peak extra memory, streaming accumulator vs stacked hidden states.

Three runs per point, each measured as the peak of live tensor bytes during the call: the
backbone alone, the backbone feeding the streaming accumulator (features of every task),
and the stacked path of the research code (``output_hidden_states``, stack, mix). Extra =
peak - peak of the backbone alone. CPU: the torch profiler's allocation events (tracemalloc
cannot see torch's allocator); CUDA: ``torch.cuda.max_memory_allocated``. Beside the
measurement, the bytes each path must hold by construction: stacked (L+1)·B·T·H states,
streaming one B·T·Σk float32 buffer.

    sidetask bench memory --tasks 1,3,8,16 --batches 1,4,16,32 --lengths 32,128,256,512
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch

from benchmarks import common, workload
from benchmarks.shapes import build_backbone
from engine.flags import EnvFlagParser, command_prefix, parse_with_env
from heads.registry import HeadSet
from models.accumulator import StreamingAccumulator
from models.backbone import Backbone
from models.reference import reference_features

NAME = "memory"
MIB = 1024 * 1024


def build_parser() -> EnvFlagParser:
    parser = EnvFlagParser(prog="sidetask bench memory", description=__doc__)
    common.add_common_arguments(parser)
    parser.add_argument("--tasks", default="1,3,8,16", help="Task counts (at --base).")
    parser.add_argument("--batches", default="1,4,16,32", help="Batches (3 tasks, --base length).")
    parser.add_argument("--lengths", default="32,128,256,512", help="Lengths (3 tasks).")
    parser.add_argument("--base", default="8x128", help="batch x length of the task sweep.")
    return parser


def peak_bytes(fn: Callable[[], object], device: torch.device) -> int:
    """Peak live tensor bytes allocated during ``fn`` above what was live before it."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
        fn()
        torch.cuda.synchronize(device)
        return int(torch.cuda.max_memory_allocated(device) - before)
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    events = [
        (e.start_ns(), e.nbytes())
        for e in prof.profiler.kineto_results.events()  # type: ignore[union-attr]
        if e.name() == "[memory]" and e.device_type().name == "CPU"
    ]
    live = peak = 0
    for _, nbytes in sorted(events, key=lambda x: x[0]):
        live += nbytes
        peak = max(peak, live)
    return peak


def _point(
    backbone: Backbone,
    heads: HeadSet,
    names: Sequence[str],
    batch: int,
    length: int,
    ctx: common.BenchContext,
) -> dict[str, Any]:
    ids, mask = workload.synthetic_batch(backbone, batch, length)
    plan = heads.plan_for(names)
    tasks = [heads.heads[n].projection() for n in names]
    device = backbone.device

    def alone() -> None:
        backbone.forward(ids, mask, None, None, main=False)

    def streaming() -> None:
        acc = StreamingAccumulator(plan, batch, length, device, ctx.kernel)
        backbone.forward(ids, mask, acc, plan.last_layer, main=False)
        acc.features()

    def stacked() -> None:
        reference_features(backbone, ids, mask, tasks)

    variants = {"alone": alone, "streaming": streaming, "stacked": stacked}
    for _ in range(ctx.warmup):
        for fn in variants.values():
            fn()
    peaks: dict[str, list[int]] = {n: [] for n in variants}
    for r in range(ctx.repeats):
        for name in list(variants) if r % 2 == 0 else list(variants)[::-1]:
            peaks[name].append(peak_bytes(variants[name], device))
    extra = {
        name: [(p - a) / MIB for p, a in zip(peaks[name], peaks["alone"], strict=True)]
        for name in ("streaming", "stacked")
    }
    info = backbone.info
    elt = torch.finfo(backbone.dtype).bits // 8
    total_k = sum(t.k for t in tasks)
    row: dict[str, Any] = {
        "tasks": len(names),
        "batch": batch,
        "length": length,
        "backbone_peak_mib": common.summary([p / MIB for p in peaks["alone"]]),
        "streaming_extra_mib": common.summary(extra["streaming"]),
        "stacked_extra_mib": common.summary(extra["stacked"]),
        "held_by_construction_mib": {
            "streaming": batch * length * total_k * 4 / MIB,
            "stacked": info.num_states * batch * length * info.hidden_size * elt / MIB,
        },
    }
    s, t = row["streaming_extra_mib"]["median"], row["stacked_extra_mib"]["median"]
    row["stacked_over_streaming"] = t / s if s > 0 else None
    print(
        f"tasks {len(names)} {batch}x{length}: streaming +{s:.1f} MiB, stacked +{t:.1f} MiB",
        flush=True,
    )
    return row


def measure(
    ctx: common.BenchContext,
    shape: str,
    task_counts: Sequence[int],
    batches: Sequence[int],
    lengths: Sequence[int],
    base: tuple[int, int],
) -> dict[str, Any]:
    backbone = build_backbone(shape, ctx)
    heads = workload.bench_heads(backbone, max([*task_counts, 3]))
    names = heads.names
    sweeps: dict[str, list[dict[str, Any]]] = {"tasks": [], "batch": [], "length": []}
    for n in task_counts:
        sweeps["tasks"].append(_point(backbone, heads, names[:n], *base, ctx))
    for b in batches:
        sweeps["batch"].append(_point(backbone, heads, names[:3], b, base[1], ctx))
    for t in lengths:
        sweeps["length"].append(_point(backbone, heads, names[:3], base[0], t, ctx))
    method = "cuda max_memory_allocated" if ctx.device.type == "cuda" else "torch profiler"
    return {
        "backbone": backbone.info.name,
        "num_layers": backbone.info.num_layers,
        "hidden_size": backbone.info.hidden_size,
        "measured_with": method,
        "extra_is": "peak live tensor bytes minus the backbone-alone peak (MiB)",
        "sweeps": sweeps,
    }


def plot(payload: dict[str, Any], ctx: common.BenchContext) -> None:
    fig, axes = common.new_figure(3)
    for ax, (key, label) in zip(
        axes,
        [("tasks", "tasks"), ("batch", "batch (3 tasks)"), ("length", "length (3 tasks)")],
        strict=True,
    ):
        rows = payload["sweeps"][key]
        if not rows:
            continue
        x = [r[key] for r in rows]
        for variant, color in (("stacked", "C3"), ("streaming", "C0")):
            med = [max(r[f"{variant}_extra_mib"]["median"], 1e-3) for r in rows]
            held = [max(r["held_by_construction_mib"][variant], 1e-3) for r in rows]
            ax.plot(x, med, marker="o", color=color, label=f"{variant} (measured)")
            ax.plot(x, held, linestyle="--", color=color, alpha=0.6, label=f"{variant} (held)")
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel(label)
        ax.set_ylabel("peak extra memory (MiB)")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    title = (
        f"Peak extra memory, {payload['backbone']} ({ctx.device.type}, {payload['measured_with']})"
    )
    common.save_figure(fig, common.plot_path(NAME, ctx), title)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_with_env(build_parser(), argv, command_prefix("bench", "memory"))
    ctx = common.setup(args)
    base = common.parse_shapes(args.base)[0]
    payload = measure(
        ctx,
        ctx.shape,
        common.parse_ints(args.tasks),
        common.parse_ints(args.batches),
        common.parse_ints(args.lengths),
        base,
    )
    path = common.write_result(NAME, ctx, payload)
    plot(payload, ctx)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
