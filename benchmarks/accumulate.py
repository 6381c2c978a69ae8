"""The fused accumulate kernel vs eager torch vs torch.compile of the same function.

Per layer: one update of RoBERTa-large / BART-large shapes (H=1024, tasks k=64,64,128) for
512, 4096 and 16384 rows, fp16 and bf16: time per layer (median, min, max of the repeats;
each repeat times ``--inner`` back-to-back calls between CUDA events, warm-up excluded, which
also takes Triton's autotuning and torch.compile's compilation out of the timings), speed-up
over eager (per-round ratio), achieved GB/s and TFLOP/s against the device's peak. Then the
whole model: random-weight RoBERTa-large, fp16, backbone alone vs backbone + 3 heads, with
the Triton kernel and with the torch path, batch 32x128 and 8x512.

    sidetask bench accumulate --device cuda
    sidetask bench accumulate --device cpu   # small eager-vs-compile run, no Triton, labelled

Results: benchmarks/results/accumulate_<device>.json and .md (a table for the README).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import re
import statistics
import time
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import torch

from benchmarks import common, workload
from engine.flags import EnvFlagParser, command_prefix, parse_with_env
from models.kernels.accumulate import Segment, accumulate_torch, accumulate_triton

NAME = "accumulate"
MODELS = {"roberta-large": 1024, "bart-large": 1024}  # hidden size: the per-layer shape
TASK_KS = (64, 64, 128)
#: Dense fp16/bf16 tensor-core TFLOP/s and HBM GB/s from the vendors' data sheets, by name.
PEAKS = {
    "H200": (989.0, 4800.0),
    "H100 NVL": (835.0, 3900.0),
    "H100 PCIe": (756.0, 2000.0),
    "H100": (989.0, 3350.0),  # SXM
    "A100-SXM4-80GB": (312.0, 2039.0),
    "A100 80GB PCIe": (312.0, 1935.0),
    "A100": (312.0, 1555.0),  # 40 GB
    "L40S": (362.0, 864.0),
    "L4": (121.0, 300.0),
}
Variant = Callable[[], object]


def build_parser() -> EnvFlagParser:
    p = EnvFlagParser(prog="sidetask bench accumulate", description=__doc__)
    p.add_argument("--device", default="cuda", help="cuda (the benchmark) or cpu (small run).")
    p.add_argument("--dtypes", default=None, help="Default float16,bfloat16 (cpu: float32).")
    p.add_argument("--rows", default=None, help="Default 512,4096,16384 (cpu: 64,512).")
    p.add_argument("--models", default=",".join(MODELS), help=f"From {list(MODELS)}.")
    p.add_argument("--variants", default=None, help="triton,eager,compile (cpu: no triton).")
    p.add_argument("--repeats", type=int, default=7, help="Timed rounds (>= 5).")
    p.add_argument("--warmup", type=int, default=2, help="Untimed rounds (autotune, compile).")
    p.add_argument("--inner", type=int, default=20, help="Calls per timed round.")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads.")
    p.add_argument("--whole-model", action=argparse.BooleanOptionalAction, default=None)
    p.add_argument("--model", default="roberta-large", help="Whole-model backbone shape.")
    p.add_argument("--model-shapes", default="32x128,8x512", help="batch x length.")
    p.add_argument("--model-kernels", default=None, help="Default triton,torch (cpu: torch).")
    p.add_argument("--peak-tflops", type=float, default=None, help="Override the peak table.")
    p.add_argument("--peak-gbps", type=float, default=None, help="Override the peak table.")
    p.add_argument("--out", type=Path, default=common.RESULTS_DIR)
    return p


def device_slug(device: torch.device) -> str:
    """Result file suffix: ``cpu`` or the GPU's name, e.g. ``nvidia_h100_80gb_hbm3``."""
    if device.type != "cuda":
        return device.type
    return re.sub(r"[^a-z0-9]+", "_", torch.cuda.get_device_name(device).lower()).strip("_")


def peaks(device: torch.device, args: argparse.Namespace) -> tuple[float | None, float | None]:
    """(TFLOP/s, GB/s) of the device: flags first, then the data-sheet table, else unknown."""
    found: tuple[float | None, float | None] = (None, None)
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        found = next((v for k, v in PEAKS.items() if k in name), (None, None))
    return (args.peak_tflops or found[0], args.peak_gbps or found[1])


def layer_case(
    rows: int, hidden: int, dtype: torch.dtype, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, tuple[Segment, ...]]:
    """One layer's update as an AccumulatorPlan lays it out: weights and acc columns packed."""
    gen = torch.Generator(device=device).manual_seed(rows + hidden)
    segments, offset = [], 0
    for i, k in enumerate(TASK_KS):
        segments.append(Segment(offset, offset, k, 1.0 / (i + 2)))
        offset += k
    z = torch.randn(rows, hidden, generator=gen, device=device).to(dtype)
    weight = (torch.randn(offset, hidden, generator=gen, device=device) / hidden**0.5).to(dtype)
    acc = torch.zeros(rows, offset, device=device)
    return acc, z, weight, tuple(segments)


def traffic(rows: int, hidden: int, dtype: torch.dtype) -> tuple[int, int]:
    """(bytes, FLOPs) of one update at its minimum: Z and W read once, acc read and written."""
    total_k = sum(TASK_KS)
    size = torch.tensor([], dtype=dtype).element_size()
    nbytes = rows * hidden * size + total_k * hidden * size + 2 * rows * total_k * 4
    return nbytes, 2 * rows * hidden * total_k


def time_rounds(
    variants: dict[str, Variant], repeats: int, warmup: int, inner: int, device: torch.device
) -> dict[str, list[float]]:
    """Seconds per call: ``inner`` calls per round between CUDA events (CPU: perf_counter),
    variants interleaved in ABBA order, warm-up rounds dropped."""
    names = list(variants)
    times: dict[str, list[float]] = {n: [] for n in names}
    for r in range(warmup + repeats):
        for name in names if r % 2 == 0 else names[::-1]:
            fn = variants[name]
            if device.type == "cuda":
                start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(True)
                torch.cuda.synchronize(device)
                start.record()
                for _ in range(inner):
                    fn()
                end.record()
                torch.cuda.synchronize(device)
                seconds = start.elapsed_time(end) / 1000
            else:
                begin = time.perf_counter()
                for _ in range(inner):
                    fn()
                seconds = time.perf_counter() - begin
            if r >= warmup:
                times[name].append(seconds / inner)
    return times


def layer_variants(names: Sequence[str]) -> dict[str, Callable[..., None]]:
    """The same update three ways; torch.compile is built once, recompiling per shape."""
    table: dict[str, Callable[..., None]] = {}
    for name in names:
        if name == "eager":
            table[name] = accumulate_torch
        elif name == "compile":
            table[name] = torch.compile(accumulate_torch, dynamic=False)
        elif name == "triton":
            table[name] = accumulate_triton
        else:
            raise SystemExit(f"unknown variant {name!r}; choose from triton, eager, compile")
    return table


def measure_layers(args: argparse.Namespace, device: torch.device) -> list[dict[str, Any]]:
    fns = layer_variants(args.variants)
    peak_tflops, peak_gbps = peaks(device, args)
    rows_out = []
    for model in args.models:
        hidden = MODELS[model]
        for dtype_name in args.dtypes:
            dtype = common.DTYPES[dtype_name]
            for rows in args.rows:
                acc, z, weight, segments = layer_case(rows, hidden, dtype, device)
                variants: dict[str, Variant] = {
                    n: partial(f, acc, z, weight, segments) for n, f in fns.items()
                }
                times = time_rounds(variants, args.repeats, args.warmup, args.inner, device)
                nbytes, flops = traffic(rows, hidden, dtype)
                floor = None
                if peak_gbps and peak_tflops:
                    floor = max(nbytes / (peak_gbps * 1e9), flops / (peak_tflops * 1e12))
                row: dict[str, Any] = {
                    "model": model,
                    "hidden": hidden,
                    "task_ks": list(TASK_KS),
                    "rows": rows,
                    "dtype": dtype_name,
                    "bytes": nbytes,
                    "flops": flops,
                    "roofline_s": floor,
                    "variants": {},
                }
                for name, values in times.items():
                    median = statistics.median(values)
                    entry = {
                        "time_s": common.summary(values),
                        "gb_per_s": nbytes / median / 1e9,
                        "tflop_per_s": flops / median / 1e12,
                        "fraction_of_peak_bandwidth": (
                            nbytes / median / 1e9 / peak_gbps if peak_gbps else None
                        ),
                        "fraction_of_peak_flops": (
                            flops / median / 1e12 / peak_tflops if peak_tflops else None
                        ),
                        "times_roofline": median / floor if floor else None,
                    }
                    if "eager" in times:
                        speedups = [e / t for e, t in zip(times["eager"], values, strict=True)]
                        entry["speedup_over_eager"] = common.summary(speedups)
                    row["variants"][name] = entry
                rows_out.append(row)
                print(_layer_line(row), flush=True)
                del acc, z, weight
    return rows_out


def _layer_line(row: dict[str, Any]) -> str:
    parts = [f"{row['model']} {row['dtype']} rows={row['rows']}:"]
    for name, v in row["variants"].items():
        speed = v.get("speedup_over_eager", {}).get("median")
        parts.append(
            f"{name} {v['time_s']['median'] * 1e6:.1f} us ({v['gb_per_s']:.0f} GB/s"
            + (f", x{speed:.2f}" if speed else "")
            + ")"
        )
    return " ".join(parts)


def measure_model(args: argparse.Namespace, device: torch.device) -> dict[str, Any]:
    """Backbone alone vs backbone + 3 heads (k 64, 64, 128), per accumulate kernel."""
    from benchmarks.shapes import build_backbone

    dtype = torch.float16 if device.type == "cuda" else torch.float32
    ctx = common.BenchContext(
        device, dtype, args.threads, args.repeats, args.warmup, args.out, None, "auto"
    )
    backbone = build_backbone(args.model, ctx)
    main = not backbone.is_encoder_decoder
    heads = workload.bench_heads(backbone, len(TASK_KS))
    rows = []
    for batch, length in common.parse_shapes(args.model_shapes):
        ids, mask = workload.synthetic_batch(backbone, batch, length)
        variants: dict[str, Variant] = {
            "backbone": partial(backbone.forward, ids, mask, None, None, main)
        }
        for kernel in args.model_kernels:
            run = partial(workload.run_tasks, backbone, heads, heads.names, ids, mask, main, kernel)
            variants[f"3 heads ({kernel})"] = run
            variants[f"accumulate only ({kernel})"] = partial(run, head_modules=False)
        times = common.time_interleaved(variants, args.repeats, args.warmup, device)
        row: dict[str, Any] = {"batch": batch, "length": length, "times_s": {}, "overhead_pct": {}}
        for name, values in times.items():
            row["times_s"][name] = common.summary(values)
            if name != "backbone":
                ratio = common.paired_ratio(times, name, "backbone")
                row["overhead_pct"][name] = {
                    k: (ratio[k] - 1) * 100 for k in ("median", "min", "max")
                }
        rows.append(row)
        shown = ", ".join(f"{k} {v['median']:+.2f}%" for k, v in row["overhead_pct"].items())
        print(f"{args.model} {batch}x{length}: {shown}", flush=True)
    del backbone, heads
    gc.collect()
    return {"model": args.model, "dtype": str(dtype).split(".")[-1], "rows": rows}


def markdown(layers: Sequence[dict[str, Any]], model: dict[str, Any] | None, label: str) -> str:
    """The README table: per-layer times and speed-ups, then the whole-model overhead."""
    names = list(layers[0]["variants"]) if layers else []
    head = "| model | dtype | rows | " + " | ".join(f"{n} µs" for n in names)
    head += " | triton × eager | triton GB/s (% peak) | triton × roofline |"
    lines = [f"Per layer, {label}:", "", head, "|" + "---|" * (head.count("|") - 1)]
    for r in layers:
        cells = [f"{r['variants'][n]['time_s']['median'] * 1e6:.1f}" for n in names]
        tri = r["variants"].get("triton")
        extra = ["–", "–", "–"]
        if tri:
            speed = tri.get("speedup_over_eager", {}).get("median")
            frac = tri["fraction_of_peak_bandwidth"]
            extra = [
                f"{speed:.2f}" if speed else "–",
                f"{tri['gb_per_s']:.0f}" + (f" ({frac * 100:.0f} %)" if frac else ""),
                f"{tri['times_roofline']:.2f}" if tri["times_roofline"] else "–",
            ]
        lines.append(f"| {r['model']} | {r['dtype']} | {r['rows']} | " + " | ".join(cells + extra))
        lines[-1] += " |"
    if model:
        lines += ["", f"Whole model, {model['model']} {model['dtype']}, overhead vs backbone:", ""]
        for row in model["rows"]:
            shown = ", ".join(f"{k} {v['median']:+.2f} %" for k, v in row["overhead_pct"].items())
            lines.append(f"- {row['batch']}x{row['length']}: {shown}")
    return "\n".join(lines) + "\n"


def resolve(args: argparse.Namespace, device: torch.device) -> None:
    """Device-dependent defaults; refuse what cannot run here, clearly."""
    cuda = device.type == "cuda"
    if cuda and not torch.cuda.is_available():
        raise SystemExit(
            "no CUDA device: the kernel benchmark needs a GPU. For the small CPU comparison "
            "of eager torch vs torch.compile, run with --device cpu."
        )
    args.dtypes = (args.dtypes or ("float16,bfloat16" if cuda else "float32")).split(",")
    args.rows = common.parse_ints(args.rows or ("512,4096,16384" if cuda else "64,512"))
    args.models = [m for m in args.models.split(",") if m]
    args.variants = (args.variants or ("triton,eager,compile" if cuda else "eager,compile")).split(
        ","
    )
    args.model_kernels = (args.model_kernels or ("triton,torch" if cuda else "torch")).split(",")
    if args.whole_model is None:
        args.whole_model = cuda
    unknown = [m for m in args.models if m not in MODELS] + [
        d for d in args.dtypes if d not in common.DTYPES
    ]
    if unknown:
        raise SystemExit(f"unknown model or dtype: {unknown}")
    if not cuda and "triton" in args.variants and os.environ.get("TRITON_INTERPRET") != "1":
        raise SystemExit("triton on CPU runs only under TRITON_INTERPRET=1 (and says nothing "
                         "about GPU speed); drop it from --variants")  # fmt: skip


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_with_env(build_parser(), argv, command_prefix("bench", "accumulate"))
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    device = torch.device(args.device)
    resolve(args, device)
    label = (
        torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else f"CPU ({common.cpu_model()}, {args.threads} threads) — eager vs torch.compile "
        "only, not a GPU result"
    )
    with torch.inference_mode():
        layers = measure_layers(args, device)
    model = measure_model(args, device) if args.whole_model else None
    ctx = common.BenchContext(
        device, torch.float32, args.threads, args.repeats, args.warmup, args.out, None, "n/a"
    )
    peak_tflops, peak_gbps = peaks(device, args)
    record = {
        "benchmark": NAME,
        "label": label,
        "command": common.command_line(),
        "machine": common.machine_info(ctx),
        "settings": {
            "repeats": args.repeats,
            "warmup": args.warmup,
            "inner_calls_per_round": args.inner,
            "timing": "CUDA events" if device.type == "cuda" else "perf_counter",
            "order": "interleaved ABBA, speed-ups per round",
            "peak_tflops": peak_tflops,
            "peak_gb_per_s": peak_gbps,
        },
        "layers": layers,
        "whole_model": model,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    stem = args.out / f"{NAME}_{device_slug(device)}"
    stem.with_suffix(".json").write_text(json.dumps(record, indent=2) + "\n")
    stem.with_suffix(".md").write_text(markdown(layers, model, label))
    print(f"wrote {stem}.json and {stem}.md")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
