"""bfloat16 on CPU: what it changes in the answers, and what it buys in throughput.

Four configurations of the same engine, side by side in one run:
``fp32`` (float32 backbone, accumulator and heads: bit-reproducible), ``bf16-acc`` (only the
accumulator's projection matmul in bfloat16: what ``auto`` gives on CPUs with bf16 dot
products), ``bf16-heads`` (float32 backbone, accumulator and head layers in bfloat16) and
``bf16`` (backbone and heads in bfloat16). For each, the shipped heads' dev metrics
(through the engine, as `sidetask eval` scores them) and how many answers equal the float32
ones; then offline texts/s for {embedding} and {every head + embedding}, interleaved rounds,
median [min-max].

    python -m benchmarks.head_dtype                 # dev sets under ../shared/data
    sidetask bench head_dtype --limit 200 --repeats 5

bfloat16 matmuls are fast only on CPUs with bf16 instructions (``avx512_bf16`` or
``amx_bf16`` in /proc/cpuinfo): the JSON records which this machine has.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from benchmarks import common
from benchmarks.serve import texts as bench_texts
from engine.flags import EnvFlagParser, command_prefix, parse_with_env

#: name -> (backbone dtype, head_dtype, accumulator_dtype)
CONFIGS = {
    "fp32": ("float32", "float32", "float32"),
    "bf16-acc": ("float32", "float32", "bfloat16"),
    "bf16-heads": ("float32", "bfloat16", "bfloat16"),
    "bf16": ("bfloat16", "bfloat16", "bfloat16"),
}
DEFAULT_DEV = "sentiment=sst2/dev.tsv,cola=cola/dev.tsv,ner=conll2003/dev.txt"
TASK_SETS = ("embedding", "all")  # the main task alone; every head + the main task


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = EnvFlagParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    common.add_common_arguments(p, repeats=5)
    p.add_argument(
        "--data-dir", type=Path, default=Path("../shared/data"), help="Root of the dev files."
    )
    p.add_argument(
        "--dev", default=DEFAULT_DEV, help="task=file pairs under --data-dir (comma separated)."
    )
    p.add_argument("--limit", type=int, default=0, help="First N dev examples per task; 0 = all.")
    p.add_argument("--heads-dir", type=Path, default=None, help="Default: the shipped heads.")
    p.add_argument("--batch", type=int, default=32, help="Texts per timed engine call.")
    return parse_with_env(p, argv, command_prefix("bench", "head_dtype"))


def build_engines(args: argparse.Namespace, ctx: common.BenchContext) -> dict[str, Any]:
    from engine.loading import build_engine
    from server.settings import Settings

    engines = {}
    for name, (dtype, head_dtype, accumulator_dtype) in CONFIGS.items():
        settings = Settings(
            backbone=args.backbone,
            heads_dir=None if args.heads_dir is None else [args.heads_dir],
            device=str(ctx.device),
            dtype=dtype,  # type: ignore[arg-type]
            head_dtype=head_dtype,  # type: ignore[arg-type]
            accumulator_dtype=accumulator_dtype,  # type: ignore[arg-type]
            kernel=ctx.kernel,  # type: ignore[arg-type]
            threads=ctx.threads,
        )
        engines[name] = build_engine(settings)
    return engines


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, list):  # entities: same spans and labels
        return [(e.label, e.start, e.end) for e in a] == [(e.label, e.start, e.end) for e in b]
    return bool(a.label == b.label)


def _score_gap(a: Any, b: Any) -> float:
    if isinstance(a, list):
        pairs = zip(a, b, strict=True) if len(a) == len(b) else iter(())
        return max((abs(x.score - y.score) for x, y in pairs), default=0.0)
    return float(abs(a.score - b.score))


def quality(engines: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    """Dev metrics per configuration and agreement with the float32 answers."""
    from train.data import read_examples
    from train.evaluate import score
    from train.kinds import train_kind

    out: dict[str, Any] = {}
    for pair in filter(None, args.dev.split(",")):
        task, rel = pair.split("=", 1)
        examples = read_examples(args.data_dir / rel)
        if args.limit:
            examples = examples[: args.limit]
        text_list = [e.text for e in examples]
        answers: dict[str, list[Any]] = {}
        for name, engine in engines.items():
            got: list[Any] = []
            for i in range(0, len(text_list), 64):
                got += [r[task] for r in engine.analyze(text_list[i : i + 64], [task]).results]
            answers[name] = got
        head = engines["fp32"].heads.heads[task]
        kind = train_kind(head.kind)
        row: dict[str, Any] = {"file": rel, "n": len(examples)}
        for name, got in answers.items():
            preds = [kind.from_answer(a, head.labels) for a in got]
            metrics = score(head, examples, preds)
            ref = answers["fp32"]
            row[name] = {
                "metrics": {k: v for k, v in metrics.items() if isinstance(v, float | int)},
                "identical_to_fp32": sum(_same(a, b) for a, b in zip(got, ref, strict=True)),
                "max_score_gap_to_fp32": max(
                    (_score_gap(a, b) for a, b in zip(got, ref, strict=True)), default=0.0
                ),
            }
        out[task] = row
    return out


def speed(
    engines: dict[str, Any], ctx: common.BenchContext, batch: int
) -> dict[str, dict[str, Any]]:
    """texts/s per configuration and task set, ABBA-interleaved rounds on ``ctx.clock``
    (process CPU time on CPU: robust to other jobs on a shared machine; wall time recorded too)."""
    sample = bench_texts(batch)

    def call(engine: Any, task_set: str) -> Any:
        heads = common.workload_heads(engine.heads.names) if task_set == "all" else []
        return lambda: engine.analyze(sample, [*heads, engine.main_task])

    variants = {f"{c}/{t}": call(engines[c], t) for c in engines for t in TASK_SETS}
    times = common.time_interleaved(variants, ctx.repeats, ctx.warmup, ctx.device, ctx.clock)
    out: dict[str, dict[str, Any]] = {}
    for c in engines:
        emb, every = times[f"{c}/embedding"], times[f"{c}/all"]
        out[c] = {
            "embedding_texts_per_s": common.summary([batch / t for t in emb]),
            "all_texts_per_s": common.summary([batch / t for t in every]),
            "all_over_embedding": common.summary([e / a for a, e in zip(every, emb, strict=True)]),
            "raw_seconds": {
                f"{t}_{k}": times.raw()[k][f"{c}/{t}"] for t in TASK_SETS for k in ("wall", "cpu")
            },
        }
    return out


def plot(payload: dict[str, Any], ctx: common.BenchContext) -> Path:
    fig, (ax,) = common.new_figure(1)
    names = list(payload["speed"])
    for j, (key, label) in enumerate(
        (("embedding_texts_per_s", "embedding only"), ("all_texts_per_s", "all heads + embedding"))
    ):
        meds, errs = common.median_and_error([payload["speed"][n][key] for n in names])
        xs = [i + 0.38 * j for i in range(len(names))]
        ax.bar(xs, meds, width=0.36, yerr=errs, capsize=3, label=label, color=f"C{j}")
    ax.set_xticks([i + 0.19 for i in range(len(names))], names)
    ax.set_ylabel("texts / s (offline engine)")
    ax.legend(fontsize=8)
    path = common.plot_path("head_dtype", ctx)
    common.save_figure(fig, path, "float32 vs bfloat16 on CPU (median, min-max)")
    return path


def main(argv: Sequence[str] | None = None) -> int:
    from models.hardware import cpu_has_amx_bf16, cpu_has_fast_bf16

    args = parse_args(argv)
    ctx = common.setup(args)
    engines = build_engines(args, ctx)
    payload: dict[str, Any] = {
        "question": "bfloat16 heads / backbone on CPU: answers vs float32, and throughput",
        "backbone": args.backbone or "sentence-transformers/all-MiniLM-L6-v2",
        "configs": {
            n: {"dtype": d, "head_dtype": h, "accumulator_dtype": a}
            for n, (d, h, a) in CONFIGS.items()
        },
        "cpu_has_amx_bf16": cpu_has_amx_bf16(),
        "cpu_has_fast_bf16": cpu_has_fast_bf16(),
        "batch": args.batch,
        "quality": quality(engines, args),
    }
    with torch.inference_mode():
        payload["speed"] = speed(engines, ctx, args.batch)
    path = common.write_result("head_dtype", ctx, payload)
    payload["plot"] = str(plot(payload, ctx))
    for name, row in payload["speed"].items():
        print(
            f"{name:>10}: embedding {row['embedding_texts_per_s']['median']:.1f} texts/s, "
            f"all {row['all_texts_per_s']['median']:.1f}, "
            f"all/embedding {row['all_over_embedding']['median']:.3f}"
        )
    for task, row in payload["quality"].items():
        print(task, {n: (row[n]["identical_to_fp32"], row["n"]) for n in CONFIGS})
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
