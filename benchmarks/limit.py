"""The limit: how many texts/s this machine could embed if the backbone ran at matmul peak.

1. **Peak**: a large square matmul (``--size``) per dtype (float32, bfloat16; float16 on
   CUDA), with the same pinned threads as the server, median of ``--repeats`` rounds on the
   benchmark clock (process CPU time on CPU, so other processes do not count; wall on CUDA).
2. **FLOPs per text**: the backbone's matmul + attention FLOPs (``benchmarks/flops.py``,
   from its config: layers, hidden, intermediate) for each workload text at its own token
   count (no padding), averaged: the serve benchmark's texts, and full 128-token windows.
3. **Limit** = peak / FLOPs per text. **Achieved / limit** for the backbone alone (measured
   here: batches of 32 workload texts, padded per batch as the engine pads) and, when a
   serve result exists, for the offline engine and the server (its embedding-only and
   all-tasks best texts/s, read from ``--serve-json``; the FLOPs there include no heads).

    sidetask bench limit                      # CPU, 1 thread, fp32 + bf16
    sidetask bench limit --device cuda --size 8192
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from benchmarks import common, flops
from benchmarks.serve import texts as serve_texts
from benchmarks.shapes import load_backbone
from engine.flags import EnvFlagParser, command_prefix, parse_with_env

NAME = "limit"


def build_parser() -> EnvFlagParser:
    p = EnvFlagParser(prog="sidetask bench limit", description=__doc__)
    common.add_common_arguments(p, repeats=5)
    p.add_argument("--size", type=int, default=2048, help="Square matmul side (peak).")
    p.add_argument("--batch", type=int, default=32, help="Texts per backbone call.")
    p.add_argument(
        "--serve-json", type=Path, default=None, help="Default results/serve_<device>.json."
    )
    return p


def peak_dtypes(device: torch.device) -> list[torch.dtype]:
    if device.type == "cuda":
        return [torch.float32, torch.bfloat16, torch.float16]
    return [torch.float32, torch.bfloat16]


def matmul_peak(ctx: common.BenchContext, size: int, dtype: torch.dtype) -> dict[str, Any]:
    """FLOP/s of ``size``³ matmuls: 2·size³ per product, median over rounds."""
    gen = torch.Generator(device="cpu").manual_seed(0)
    a = torch.randn(size, size, generator=gen).to(ctx.device, dtype)
    b = torch.randn(size, size, generator=gen).to(ctx.device, dtype)
    inner = 10 if ctx.device.type == "cuda" else 1
    torch.backends.cuda.matmul.allow_tf32 = False  # float32 means float32 here

    def run() -> None:
        for _ in range(inner):
            torch.mm(a, b)

    times = common.time_interleaved({"mm": run}, ctx.repeats, ctx.warmup, ctx.device, ctx.clock)
    rates = [2 * size**3 * inner / t for t in times["mm"]]
    return {"size": size, "flop_per_s": common.summary(rates), "raw_s": times.raw()}


def tokens_per_text(backbone: Any, texts: Sequence[str]) -> list[int]:
    enc = backbone.tokenizer(list(texts), truncation=True, max_length=backbone.info.max_length)
    return [len(ids) for ids in enc["input_ids"]]


def flops_per_text(shape: flops.EncoderShape, lengths: Sequence[int]) -> float:
    return statistics.fmean(flops.backbone_flops(shape, 1, n) for n in lengths)


def backbone_rate(
    ctx: common.BenchContext, backbone: Any, texts: Sequence[str], batch: int
) -> dict[str, Any]:
    """texts/s of the backbone alone (tokenise, pad per batch, forward), on the bench clock."""
    batches = [list(texts[i : i + batch]) for i in range(0, len(texts), batch)]
    encoded = [
        backbone.tokenizer(b, padding=True, truncation=True, return_tensors="pt").to(ctx.device)
        for b in batches
    ]

    def run() -> None:
        with torch.inference_mode():
            for enc in encoded:
                backbone.model(**enc)

    times = common.time_interleaved({"bb": run}, ctx.repeats, ctx.warmup, ctx.device, ctx.clock)
    return {
        "texts_per_s": common.summary([len(texts) / t for t in times["bb"]]),
        "raw_s": times.raw(),
    }


def served_rates(path: Path | None) -> dict[str, Any] | None:
    """Best texts/s of a serve result (offline engine and server), with where it came from."""
    if path is None or not path.is_file():
        return None
    record = json.loads(path.read_text())
    per = record["comparison"]["per_task_set"]
    return {
        "file": str(path),
        "created": record.get("created"),
        "clock": "wall (HTTP load and offline engine)",
        "texts_per_s": {
            f"{where} {name}": per[name][f"{where}_best_texts_per_s"]
            for name in ("embedding", "all")
            for where in ("offline", "server")
        },
    }


def measure(ctx: common.BenchContext, args: argparse.Namespace) -> dict[str, Any]:
    backbone = load_backbone(ctx)
    shape = flops.EncoderShape.of(backbone)
    texts = serve_texts(64)
    lengths = tokens_per_text(backbone, texts)
    per_text = {
        "serve workload": flops_per_text(shape, lengths),
        "128-token windows": float(flops.backbone_flops(shape, 1, 128)),
    }
    peaks = {
        str(d).removeprefix("torch."): matmul_peak(ctx, args.size, d)
        for d in peak_dtypes(ctx.device)
    }
    limits = {
        dtype: {w: p["flop_per_s"]["median"] / f for w, f in per_text.items()}
        for dtype, p in peaks.items()
    }
    achieved: dict[str, Any] = {}
    for dtype in ("float32", "bfloat16"):
        backbone.model.to(common.DTYPES[dtype])
        got = backbone_rate(ctx, backbone, texts, args.batch)
        rate = got["texts_per_s"]["median"]
        achieved[f"backbone alone {dtype}"] = {
            **got,
            "limit_texts_per_s": limits[dtype]["serve workload"],
            "achieved_over_limit": rate / limits[dtype]["serve workload"],
        }
    served = served_rates(args.serve_json or ctx.out_dir / f"serve_{ctx.device.type}.json")
    if served is not None:
        dtype = served_dtype(served["file"])
        served["limit_texts_per_s"] = limits[dtype]["serve workload"]
        served["limit_dtype"] = dtype
        served["achieved_over_limit"] = {
            k: v / limits[dtype]["serve workload"] for k, v in served["texts_per_s"].items()
        }
    return {
        "question": "FLOP-bound texts/s of the backbone on this machine; achieved / limit",
        "backbone": backbone.info.name,
        "shape": {
            "layers": shape.layers,
            "hidden": shape.hidden,
            "intermediate": shape.intermediate,
        },
        "workload": {
            "texts": "benchmarks.serve texts (2 sentences each), no padding in the FLOPs",
            "mean_tokens": statistics.fmean(lengths),
            "min_tokens": min(lengths),
            "max_tokens": max(lengths),
        },
        "flops_per_text": per_text,
        "peak": peaks,
        "limit_texts_per_s": limits,
        "achieved": achieved,
        "served": served,
    }


def served_dtype(path: str) -> str:
    """The backbone dtype of a serve result (float32 unless its settings say otherwise)."""
    record = json.loads(Path(path).read_text())
    return str(record.get("machine", {}).get("dtype", "float32"))


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_with_env(build_parser(), argv, command_prefix("bench", "limit"))
    ctx = common.setup(args)
    started = time.perf_counter()
    payload = measure(ctx, args)
    payload["seconds"] = time.perf_counter() - started
    path = common.write_result(NAME, ctx, payload)
    for dtype, lim in payload["limit_texts_per_s"].items():
        peak = payload["peak"][dtype]["flop_per_s"]["median"] / 1e9
        print(f"{dtype}: peak {peak:.1f} GFLOP/s -> limit {lim['serve workload']:.0f} texts/s")
    for name, got in payload["achieved"].items():
        print(f"{name}: {got['texts_per_s']['median']:.1f} texts/s = "
              f"{got['achieved_over_limit']:.1%} of the limit")  # fmt: skip
    if payload["served"]:
        for name, ratio in payload["served"]["achieved_over_limit"].items():
            print(f"{name}: {ratio:.1%} of the {payload['served']['limit_dtype']} limit")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
