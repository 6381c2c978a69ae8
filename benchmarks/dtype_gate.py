"""The fidelity gate for ``dtype: auto``: is half precision faithful on this device?

Runs every dev set through two engines built the way the server builds them (shipped heads,
default MiniLM): the float32 reference (backbone, accumulator and head layers all float32) and
the candidate (``--dtype bfloat16``, or float16 on a GPU without bf16, with the other dtypes
on ``auto``: what ``dtype: auto`` would serve). Criteria (issue 20):

- embedding cosine to float32 >= 0.999 for every dev text (all sets);
- >= 99.5 % of each sequence head's answers identical to float32 (its sets pooled);
- NER entity F1 (seqeval, against the gold tags) within 0.3 points of float32's.

Writes ``benchmarks/results/dtype_gate_<device>.json`` with the device name, torch version,
the backbone + heads fingerprint (engine/dtype_choice.py) and each criterion; with ``--ship``
the same file also goes beside the shipped heads (heads/pretrained/dtype_gate_<device>.json),
where ``dtype: auto`` reads it at start-up.

    nice -n 19 sidetask bench dtype_gate --threads 1 --ship            # CPU, every dev text
    sidetask bench dtype_gate --device cuda --ship                       # GPU
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from benchmarks import common
from engine.flags import EnvFlagParser, command_prefix, parse_with_env

# Every shipped head, each on its dev sets (the gate vouches for all the heads it fingerprints).
DEFAULT_DEV = (
    "sentiment=sst2/dev.tsv,sentiment=imdb/dev.tsv,"
    "sentiment-long=sst2/dev.tsv,sentiment-long=imdb/dev.tsv,"
    "cola=cola/dev.tsv,ner=conll2003/dev.txt"
)
MIN_COSINE = 0.999
MIN_IDENTICAL = 0.995
MAX_F1_DROP_POINTS = 0.3
WORST = 5  # lowest-cosine texts kept in the JSON (index, set, cosine)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = EnvFlagParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N.")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1).")
    p.add_argument(
        "--candidate",
        default="auto",
        choices=["auto", "bfloat16", "float16"],
        help="dtype under test; auto = what dtype: auto would pick on this device.",
    )
    p.add_argument(
        "--data-dir", type=Path, default=Path("../shared/data"), help="Root of the dev files."
    )
    p.add_argument(
        "--dev", default=DEFAULT_DEV, help="task=file pairs under --data-dir (comma separated)."
    )
    p.add_argument(
        "--limit",
        type=int,
        default=0,
        help="A seeded random subset (seed 0, file order kept) of N texts per set; 0 = all.",
    )
    p.add_argument(
        "--max-chars",
        type=int,
        default=0,
        help="Cut texts longer than this (characters; 0 = never). Recorded per set.",
    )
    p.add_argument("--batch", type=int, default=32, help="Texts per engine call.")
    p.add_argument("--heads-dir", type=Path, default=None, help="Default: the shipped heads.")
    p.add_argument("--backbone", default=None, help="Default: the packaged MiniLM.")
    p.add_argument("--out", type=Path, default=common.RESULTS_DIR, help="Results folder.")
    p.add_argument(
        "--ship",
        action="store_true",
        help="Also write the gate beside the shipped heads (read by dtype: auto).",
    )
    return parse_with_env(p, argv, command_prefix("bench", "dtype_gate"))


def candidate_dtype(name: str, device: torch.device) -> torch.dtype:
    from engine.dtype_choice import candidate
    from engine.loading import hardware_of

    if name != "auto":
        return common.DTYPES[name]
    half = candidate(device, hardware_of(device))
    if half is None:
        raise SystemExit(f"{device}: no half-precision candidate (a CPU without native bf16)")
    return half


def build(args: argparse.Namespace, device: torch.device, dtype: torch.dtype) -> dict[str, Any]:
    """The reference and candidate engines, built as the server builds them."""
    from engine.loading import build_engine
    from engine.settings import EngineSettings

    heads = None if args.heads_dir is None else [args.heads_dir]
    base = {"backbone": args.backbone, "heads_dir": heads, "device": str(device)}
    reference = EngineSettings(
        **base, dtype="float32", head_dtype="float32", accumulator_dtype="float32"
    )
    name = str(dtype).removeprefix("torch.")
    candidate = EngineSettings(**base, dtype=name)  # type: ignore[arg-type]
    return {"float32": build_engine(reference), name: build_engine(candidate)}


def load_set(args: argparse.Namespace, rel: str) -> tuple[list[Any], dict[str, Any]]:
    from train.data import TextExample, read_examples

    path = args.data_dir / rel
    total = len(read_examples(path))
    examples = read_examples(path, max_examples=args.limit or None, seed=0)
    cut = 0
    if args.max_chars:
        for e in examples:
            if isinstance(e, TextExample) and len(e.text) > args.max_chars:
                object.__setattr__(e, "text", e.text[: args.max_chars])
                cut += 1
    info = {"file": rel, "texts_in_file": total, "n": len(examples), "cut_to_max_chars": cut}
    return examples, info


def run_set(engines: dict[str, Any], task: str, texts: list[str], batch: int) -> dict[str, Any]:
    """Each engine's head answers and embeddings (float32 tensors) for ``texts``."""
    out: dict[str, Any] = {}
    for name, engine in engines.items():
        answers: list[Any] = []
        embeddings: list[torch.Tensor] = []
        for i in range(0, len(texts), batch):
            result = engine.analyze(texts[i : i + batch], [task, engine.main_task])
            answers += [r[task] for r in result.results]
            embeddings.append(
                torch.tensor([r[engine.main_task] for r in result.results], dtype=torch.float64)
            )
        out[name] = {"answers": answers, "embeddings": torch.cat(embeddings)}
    return out


def cosines(a: torch.Tensor, b: torch.Tensor) -> list[float]:
    return torch.nn.functional.cosine_similarity(a, b, dim=1).tolist()


def same_answer(a: Any, b: Any) -> bool:
    if isinstance(a, list):  # entities: same spans and labels
        return [(e.label, e.start, e.end) for e in a] == [(e.label, e.start, e.end) for e in b]
    return bool(a.label == b.label)


def measure(args: argparse.Namespace, engines: dict[str, Any]) -> dict[str, Any]:
    """Per set: cosines, identical answers, the head's dev metrics under both dtypes."""
    from train.evaluate import score, train_kind

    ref_name, cand_name = list(engines)
    sets: list[dict[str, Any]] = []
    for pair in filter(None, args.dev.split(",")):
        task, rel = pair.split("=", 1)
        examples, row = load_set(args, rel)
        started = time.perf_counter()
        got = run_set(engines, task, [e.text for e in examples], args.batch)
        head = engines[ref_name].heads.heads[task]
        kind = train_kind(head.kind)
        cos = cosines(got[ref_name]["embeddings"], got[cand_name]["embeddings"])
        ref_answers, cand_answers = got[ref_name]["answers"], got[cand_name]["answers"]
        metrics = {}
        for name in (ref_name, cand_name):
            preds = [kind.from_answer(a, head.labels) for a in got[name]["answers"]]
            m = score(head, examples, preds)
            metrics[name] = {k: v for k, v in m.items() if isinstance(v, float | int)}
        row |= {
            "task": task,
            "kind": head.manifest.kind,
            "seconds": round(time.perf_counter() - started, 1),
            "cosine_min": min(cos),
            "cosine_mean": sum(cos) / len(cos),
            "cosine_below_min": sum(c < MIN_COSINE for c in cos),
            "worst": sorted(
                ({"index": i, "cosine": c} for i, c in enumerate(cos)), key=lambda w: w["cosine"]
            )[:WORST],
            "identical_answers": sum(
                same_answer(a, b) for a, b in zip(cand_answers, ref_answers, strict=True)
            ),
            "metrics": metrics,
        }
        sets.append(row)
        print(
            f"{rel}: n={row['n']} cos_min={row['cosine_min']:.5f} "
            f"identical={row['identical_answers']}/{row['n']} ({row['seconds']} s)",
            flush=True,
        )
    return {"sets": sets}


def criteria(sets: list[dict[str, Any]], ref: str, cand: str) -> dict[str, Any]:
    """Each criterion with its numbers and verdict."""
    out: dict[str, Any] = {}
    n = sum(s["n"] for s in sets)
    cos_min = min(s["cosine_min"] for s in sets)
    below = sum(s["cosine_below_min"] for s in sets)
    out["embedding_cosine"] = {
        "rule": f"cosine to float32 >= {MIN_COSINE} for every dev text",
        "texts": n,
        "min": cos_min,
        "below_threshold": below,
        "passed": below == 0,
    }
    for task in dict.fromkeys(s["task"] for s in sets):
        rows = [s for s in sets if s["task"] == task]
        texts = sum(s["n"] for s in rows)
        if rows[0]["kind"] == "token":
            f1_ref = sum(s["metrics"][ref]["f1"] * s["n"] for s in rows) / texts
            f1_cand = sum(s["metrics"][cand]["f1"] * s["n"] for s in rows) / texts
            drop = 100 * (f1_ref - f1_cand)
            out[f"{task}_f1"] = {
                "rule": f"entity F1 (seqeval) within {MAX_F1_DROP_POINTS} points of float32",
                "texts": texts,
                "f1_float32": f1_ref,
                f"f1_{cand}": f1_cand,
                "difference_points": drop,
                "passed": abs(drop) <= MAX_F1_DROP_POINTS,
            }
        else:
            same = sum(s["identical_answers"] for s in rows)
            out[f"{task}_identical"] = {
                "rule": f">= {100 * MIN_IDENTICAL:g} % of answers identical to float32",
                "texts": texts,
                "identical": same,
                "share": same / texts,
                "passed": same / texts >= MIN_IDENTICAL,
            }
    return out


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return common.cpu_model()


def main(argv: Sequence[str] | None = None) -> int:
    from engine.dtype_choice import SHIPPED_GATES, fingerprint, gate_file
    from engine.loading import hardware_of, head_roots

    args = parse_args(argv)
    ns = argparse.Namespace(
        device=args.device, dtype="float32", threads=args.threads, repeats=1, warmup=0,
        out=args.out, backbone=args.backbone, kernel="auto",
    )  # fmt: skip
    ctx = common.setup(ns)
    dtype = candidate_dtype(args.candidate, ctx.device)
    engines = build(args, ctx.device, dtype)
    ref, cand = list(engines)
    started = time.perf_counter()
    with torch.inference_mode():
        measured = measure(args, engines)
    verdicts = criteria(measured["sets"], ref, cand)
    failed = [k for k, v in verdicts.items() if not v["passed"]]
    engine = engines[ref]
    fp = fingerprint(engine.backbone.info, head_roots(engine_settings(args), engine.backbone.info))
    summary = "; ".join(_summary(k, v) for k, v in verdicts.items())
    gate = {
        "device_kind": ctx.device.type,
        "device_name": device_name(ctx.device),
        "candidate": cand,
        "head_layers": _layers_dtype(engines[cand]),
        "fingerprint": fp,
        "passed": not failed,
        "failed": failed,
        "summary": summary,
        "criteria": verdicts,
    }
    hw = hardware_of(ctx.device)
    payload = {
        "question": f"is {cand} faithful to float32 for the shipped heads on this device?",
        "backbone": engine.backbone.info.name,
        "torch": torch.__version__,
        "hardware": {"cpu_fast_bf16": hw.cpu_fast_bf16, "cuda_bf16": hw.cuda_bf16},
        "configs": {
            ref: {"dtype": "float32", "head_dtype": "float32", "accumulator_dtype": "float32"},
            cand: {"dtype": cand, "head_dtype": "auto", "accumulator_dtype": "auto"},
        },
        "subset": {
            "limit_per_set": args.limit or None,
            "seed": 0,
            "max_chars": args.max_chars or None,
        },
        "settings": {
            "threads": args.threads,
            "batch": args.batch,
            "kernel": "auto",
            "unpadded": {
                n: bool(getattr(e.backbone, "unpadded", False)) for n, e in engines.items()
            },
        },
        "seconds": round(time.perf_counter() - started, 1),
        "gate": gate,
        "sets": measured["sets"],
    }
    path = common.write_result("dtype_gate", ctx, payload)
    print(f"gate {'PASSED' if not failed else 'FAILED: ' + ', '.join(failed)}: {summary}")
    print(f"wrote {path}")
    if args.ship:
        shipped = gate_file(ctx.device.type, SHIPPED_GATES)
        shipped.write_text(path.read_text())
        print(f"shipped {shipped}")
    return 0


def _layers_dtype(engine: Any) -> str:
    """The dtype the candidate's head layers ran in (``auto``'s rule at the time of the
    gate; dtype: auto refuses a gate measured under another rule)."""
    return str(engine.heads.module_dtype).removeprefix("torch.")


def engine_settings(args: argparse.Namespace) -> Any:
    from engine.settings import EngineSettings

    heads = None if args.heads_dir is None else [args.heads_dir]
    return EngineSettings(backbone=args.backbone, heads_dir=heads, device=args.device)


def _summary(name: str, v: dict[str, Any]) -> str:
    if "min" in v:
        return f"cosine min {v['min']:.5f} over {v['texts']} texts"
    if "share" in v:
        return f"{name} {v['identical']}/{v['texts']} identical"
    cand = next(k for k in v if k.startswith("f1_") and k != "f1_float32")
    return f"{name} {100 * v[cand]:.2f} vs float32 {100 * v['f1_float32']:.2f}"


if __name__ == "__main__":
    raise SystemExit(main())
