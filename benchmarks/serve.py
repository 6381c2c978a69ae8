"""Q6: the HTTP server under load vs the offline engine, and the cost of heads when served.

Offline: ``Engine.run_batch`` in this process at batch sizes 1/8/32/64 (best texts/s kept),
measured before and after the server phase (rounds pooled).
Served: a real ``sidetask serve`` subprocess on loopback with the same threads, loaded by
closed-loop clients (httpx from this process, or ``hey`` processes, one body each) at
concurrency 1/8/32/128. Every request carries different texts (``--texts-per-request``
sentences of 12-31 words from SST-2 dev); throughput credits each answered request with the
share of its lifetime inside the steady window (benchmarks/loadgen.py), so it does not move
in whole-batch steps. Task sets: {embedding}, {sentiment, cola, ner}, {all}. Every point is
the median of ``--repeats`` runs. Clocks: wall time for both sides (HTTP load; the offline
engine's process CPU time is recorded beside its wall time).

    python -m benchmarks.serve                       # packaged MiniLM, 5 repeats x 6 s
    sidetask bench serve --texts-per-request 16 --concurrency 4   # the issue's peer load
    sidetask bench serve --seconds 2 --concurrency 1,8,32,128

Reports texts/s, p50/p99 latency, server/offline ratio at saturation (target >= 0.85) and
all-tasks/embedding-only throughput (target >= 0.85). Note: on a small CPU box the load
generator shares the cores with the server, which lowers the server's share.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import statistics
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks import common, loadgen, thread_clock, workload
from benchmarks.live_server import Outcome, ServerProcess, closed_loop, server_env, summarise
from benchmarks.shapes import load_backbone
from engine.flags import EnvFlagParser, command_prefix, parse_with_env

HEADS = (("sentiment", "sequence", 64), ("cola", "sequence", 64), ("ner", "token", 128))
TASK_SETS: dict[str, list[str]] = {
    "embedding": ["embedding"],
    "heads3": ["sentiment", "cola", "ner"],
    "all": ["sentiment", "cola", "ner", "embedding"],
}
SENTENCES = list(loadgen.FALLBACK)  # the fixed texts of the older, single-body runs


def texts(n: int, sentences_per_text: int = 2) -> list[str]:
    """Realistic review/news-length texts (about 30-40 words), varied so lengths differ."""
    out = []
    for i in range(n):
        picks = [SENTENCES[(i + j) % len(SENTENCES)] for j in range(sentences_per_text)]
        out.append(" ".join(picks))
    return out


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = EnvFlagParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    common.add_common_arguments(p, repeats=5)
    p.add_argument("--concurrency", type=common.parse_ints, default=[1, 8, 32, 128])
    p.add_argument("--offline-batches", type=common.parse_ints, default=[1, 8, 32, 64])
    p.add_argument("--seconds", type=float, default=6.0, help="Seconds per load point.")
    p.add_argument(
        "--ramp-up",
        type=float,
        default=1.5,
        help="First seconds of each point not counted (at most half of --seconds): answers "
        "cannot complete before the first batch has run.",
    )
    p.add_argument("--heads-dir", type=Path, default=None, help="Default: shipped or random.")
    p.add_argument("--texts-per-request", type=int, default=1, help="Texts in each request.")
    p.add_argument(
        "--texts", type=Path, default=loadgen.SST2_DEV, help="TSV of sentences (first column)."
    )
    p.add_argument(
        "--client",
        choices=["hey", "httpx"],
        default="httpx",
        help="Load generator: httpx (this process, a new body every request) or hey "
        "(apt-get install hey; several processes, one body each: --hey-bodies).",
    )
    p.add_argument("--hey-bodies", type=int, default=8, help="Distinct bodies (hey processes).")
    return parse_with_env(p, argv, command_prefix("bench", "serve"))


def prepare_heads(backbone: Any, args: argparse.Namespace, folder: Path) -> Path:
    """Shipped heads for the default backbone (their own folder, so that ``dtype: auto``
    finds the fidelity gate shipped with them and the server runs as it starts without
    flags); random heads of the method's sizes for what is missing or another backbone."""
    from heads.io import save_head
    from heads.registry import head_folders, load_head_set
    from heads.shipped import PRETRAINED_HEADS

    if args.heads_dir is not None:
        return Path(args.heads_dir)
    shipped_names = {p.name for p in head_folders([PRETRAINED_HEADS])}
    if args.backbone is None and {name for name, _, _ in HEADS} <= shipped_names:
        return PRETRAINED_HEADS
    have: set[str] = set()
    if args.backbone is None and shipped_names:
        shipped = load_head_set([PRETRAINED_HEADS], backbone.info, skip_failures=True)
        for name, head in shipped.heads.items():
            save_head(head, folder / name)
            have.add(name)
    for seed, (name, kind, k) in enumerate(HEADS):
        if name not in have:
            save_head(workload.bench_head(backbone.info, name, kind, k, seed), folder / name)
    return folder


def offline(
    engine: Any,
    ctx: common.BenchContext,
    batches: Sequence[int],
    pool: Sequence[str] = (),
    per_request: int = 1,
) -> dict[str, Any]:
    """texts/s of Engine.run_batch per task set and batch size (requests per call, each with
    ``per_request`` texts from ``pool``); the best batch is kept. Wall clock, with process
    CPU time recorded beside it.

    Rounds are interleaved (every task set and batch size once per round, order reversed
    every other round) so a noisy shared machine slows all variants alike.
    """
    from engine.core import AnalyzeRequest

    pool = pool or texts(64)
    variants = [(name, b) for name in TASK_SETS for b in batches]
    requests = {
        (name, b): [
            AnalyzeRequest(loadgen.request_texts(pool, i, per_request), TASK_SETS[name])
            for i in range(b)
        ]
        for name, b in variants
    }
    rates: dict[tuple[str, int], list[float]] = {v: [] for v in variants}
    cpu_rates: dict[tuple[str, int], list[float]] = {v: [] for v in variants}
    for r in range(ctx.warmup + ctx.repeats):
        for v in variants if r % 2 == 0 else variants[::-1]:
            start, cpu_start = time.perf_counter(), time.process_time()
            engine.run_batch(requests[v])
            if r >= ctx.warmup:
                n = v[1] * per_request
                rates[v].append(n / (time.perf_counter() - start))
                cpu_rates[v].append(n / max(time.process_time() - cpu_start, 1e-9))
    out: dict[str, Any] = {}
    for name in TASK_SETS:
        per_batch = {str(b): common.summary(rates[(name, b)]) for b in batches}
        best = max(per_batch, key=lambda k: per_batch[k]["median"])
        out[name] = {
            "by_batch": per_batch,
            "best_batch": int(best),
            "best": per_batch[best],
            "cpu_texts_per_s_by_batch": {
                str(b): common.summary(cpu_rates[(name, b)]) for b in batches
            },
        }
    return out


def merge_offline(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """Pool the rounds of two offline passes (before and after the server phase)."""
    out: dict[str, Any] = {}
    for name in a:
        per_batch = {
            k: common.summary(v["values"] + b[name]["by_batch"][k]["values"])
            for k, v in a[name]["by_batch"].items()
        }
        best = max(per_batch, key=lambda k: per_batch[k]["median"])
        out[name] = {"by_batch": per_batch, "best_batch": int(best), "best": per_batch[best]}
        cpu_a, cpu_b = (x[name].get("cpu_texts_per_s_by_batch", {}) for x in (a, b))
        if cpu_a and cpu_b:
            out[name]["cpu_texts_per_s_by_batch"] = {
                k: common.summary(v["values"] + cpu_b[k]["values"]) for k, v in cpu_a.items()
            }
    return out


def load(
    client: str,
    base: str,
    tasks: list[str],
    pool: Sequence[str],
    concurrency: int,
    seconds: float,
    per_request: int = 1,
    hey_bodies: int = 8,
) -> list[Outcome]:
    """Closed-loop load; every request (httpx) or every hey process gets different texts."""

    def body(i: int) -> dict[str, Any]:
        return {"texts": loadgen.request_texts(pool, i, per_request), "tasks": tasks}

    if client == "hey":
        bodies = [body(i) for i in range(hey_bodies)]
        return loadgen.hey_load(base + "/analyze", bodies, concurrency, seconds)
    return asyncio.run(closed_loop(base, body, concurrency, seconds))


def served(
    base: str,
    ctx: common.BenchContext,
    concurrency: Sequence[int],
    seconds: float,
    client: str,
    ramp_up: float = 0.0,
    pool: Sequence[str] = (),
    per_request: int = 1,
    hey_bodies: int = 8,
    pid: int | None = None,
) -> dict[str, Any]:
    """Closed-loop load per task set and concurrency; medians over interleaved rounds.

    With the server's ``pid`` each point also records its threads' CPU shares and voluntary
    context switches per second (benchmarks/thread_clock.py)."""
    pool = pool or texts(64)
    ramp = steady_ramp_up(ramp_up, seconds)

    def run(tasks: list[str], c: int, secs: float) -> list[Outcome]:
        return load(client, base, tasks, pool, c, secs, per_request, hey_bodies)

    for tasks in TASK_SETS.values():  # warm-up: plans built, caches hot
        run(tasks, max(concurrency), min(seconds, 1.0))
    variants = [(name, c) for c in concurrency for name in TASK_SETS]
    runs: dict[tuple[str, int], list[dict[str, Any]]] = {v: [] for v in variants}
    for r in range(ctx.repeats):
        for name, c in variants if r % 2 == 0 else variants[::-1]:
            clock = thread_clock.sample(pid) if pid is not None else {}
            started = time.perf_counter()
            outcomes = run(TASK_SETS[name], c, seconds)
            elapsed = time.perf_counter() - started
            summary = summarise(outcomes, seconds)
            if pid is not None:
                summary["threads"] = thread_clock.shares(clock, thread_clock.sample(pid), elapsed)
            summary["in_window_rps"] = loadgen.credited_texts_per_s(
                outcomes, per_request, seconds, ramp
            )
            summary["completed_tps"] = loadgen.completed_texts_per_s(
                outcomes, per_request, seconds, ramp
            )
            runs[(name, c)].append(summary)
    out: dict[str, Any] = {name: {} for name in TASK_SETS}
    for (name, c), rs in runs.items():
        p50 = [x["accepted_latency"]["p50_s"] for x in rs if x["accepted_latency"]["n"]]
        p99 = [x["accepted_latency"]["p99_s"] for x in rs if x["accepted_latency"]["n"]]
        out[name][str(c)] = {
            "texts_per_s": common.summary([x["in_window_rps"] for x in rs]),
            "completed_texts_per_s": common.summary([x["completed_tps"] for x in rs]),
            "p50_s": statistics.median(p50 or [0.0]),
            "p99_s": statistics.median(p99 or [0.0]),
            "non_200": sum(n for x in rs for s, n in x["status_counts"].items() if s != "200"),
        }
        if pid is not None:
            out[name][str(c)]["threads"] = thread_clock.median_shares([x["threads"] for x in rs])
    return out


def steady_ramp_up(ramp_up: float, seconds: float) -> float:
    """The ramp-up actually skipped: never negative, at most half the window."""
    return min(max(ramp_up, 0.0), seconds / 2)


def in_window_rate(outcomes: Sequence[Any], seconds: float, ramp_up: float = 0.0) -> float:
    """Answers (200) completed inside the load window after its first ``ramp_up`` seconds,
    per second of that steady part.

    Stragglers answered after the window are not counted, so a high concurrency with long
    queueing is not flattered by its ramp-down tail; nor is the server charged for the first
    batch's latency, during which nothing can complete yet (the offline engine is timed in
    steady state too).
    """
    ramp_up = steady_ramp_up(ramp_up, seconds)
    done = sum(1 for o in outcomes if o.status == 200 and ramp_up < o.sent + o.latency <= seconds)
    return done / (seconds - ramp_up)


def compare(off: dict[str, Any], srv: dict[str, Any]) -> dict[str, Any]:
    """Server/offline at saturation per task set; all-tasks vs embedding-only throughput."""
    out: dict[str, Any] = {}
    for name in TASK_SETS:
        best_server = max(p["texts_per_s"]["median"] for p in srv[name].values())
        out[name] = {
            "offline_best_texts_per_s": off[name]["best"]["median"],
            "server_best_texts_per_s": best_server,
            "server_over_offline": best_server / off[name]["best"]["median"],
        }
    emb, every = out["embedding"], out["all"]
    result = {
        "per_task_set": out,
        "all_over_embedding_offline": every["offline_best_texts_per_s"]
        / emb["offline_best_texts_per_s"],
        "all_over_embedding_server": every["server_best_texts_per_s"]
        / emb["server_best_texts_per_s"],
    }
    result["targets"] = {
        "server_over_offline_ge_0.85": {
            n: v["server_over_offline"] >= 0.85 for n, v in out.items()
        },
        "all_over_embedding_ge_0.85": result["all_over_embedding_server"] >= 0.85,
    }
    return result


def plot(payload: dict[str, Any], ctx: common.BenchContext) -> Path:
    fig, (ax,) = common.new_figure(1)
    for i, name in enumerate(TASK_SETS):
        points = payload["server"][name]
        xs = [int(c) for c in points]
        ax.plot(
            xs,
            [points[c]["texts_per_s"]["median"] for c in points],
            "o-",
            color=f"C{i}",
            label=f"server {name}",
        )
        ax.axhline(
            payload["offline"][name]["best"]["median"],
            color=f"C{i}",
            ls="--",
            lw=1,
            label=f"offline {name} (best batch)",
        )
    ax.set_xscale("log", base=2)
    ax.set_xlabel("concurrent clients")
    ax.set_ylabel("texts / s")
    ax.legend(fontsize=7)
    path = common.plot_path("serve", ctx)
    common.save_figure(fig, path, "sidetask serve vs offline engine (median of repeats)")
    return path


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    # both sides are timed on the wall clock (HTTP load): say so in the result file
    ctx = dataclasses.replace(common.setup(args), clock="wall")
    pool = loadgen.sentence_pool(args.texts)
    per_request = args.texts_per_request
    from engine.loading import build_engine
    from server.settings import Settings

    backbone = load_backbone(ctx)
    with tempfile.TemporaryDirectory() as tmp:
        heads = prepare_heads(backbone, args, Path(tmp) / "heads")
        settings = Settings(
            backbone=args.backbone,
            heads_dir=[heads],
            device=str(ctx.device),
            threads=ctx.threads,
            kernel=args.kernel,
            head_dtype=common.server_head_dtype(ctx),  # type: ignore[arg-type]
        )
        del backbone
        engine = build_engine(settings)
        before = offline(engine, ctx, args.offline_batches, pool, per_request)
        extra = {
            "queue_size": 4096,
            "max_batch_size": 64,
            "device": str(ctx.device),
            "kernel": args.kernel,
            "head_dtype": common.server_head_dtype(ctx),
            "log_level": "warning",
        }
        env = server_env(args.backbone, heads, ctx.threads, extra)
        with ServerProcess(env=env, log=Path(tmp) / "server.log") as srv:
            ready_s = srv.wait_ready()
            srv_points = served(
                srv.base,
                ctx,
                args.concurrency,
                args.seconds,
                args.client,
                args.ramp_up,
                pool,
                per_request,
                args.hey_bodies,
                srv.pid,
            )
            exit_code = srv.stop()
        # offline again after the server phase: the median of both brackets the load phase,
        # so slow drift of a shared machine does not favour either side
        off = merge_offline(before, offline(engine, ctx, args.offline_batches, pool, per_request))
    payload = {
        "question": "Q6: server throughput vs the offline engine; cost of heads when served",
        "backbone": args.backbone or "sentence-transformers/all-MiniLM-L6-v2",
        "texts": f"{per_request} text(s) per request, different in every request: "
        f"{len(pool)} sentences of 12-31 words from {args.texts.name}",
        "texts_per_request": per_request,
        "counting": "texts_per_s: each answered request credited with the share of its "
        "lifetime inside the steady window; completed_texts_per_s: answered inside it",
        "clocks": {
            "server": "wall (HTTP load)",
            "offline": "wall; cpu_texts_per_s_by_batch: process CPU time",
        },
        "client": args.client,
        "hey_bodies": args.hey_bodies if args.client == "hey" else None,
        "head_dtype": common.server_head_dtype(ctx),
        "seconds_per_point": args.seconds,
        "ramp_up_seconds": steady_ramp_up(args.ramp_up, args.seconds),
        "server_ready_s": ready_s,
        "server_exit_code": exit_code,
        "backbone_dtype": engine.dtype_choice.name,
        "backbone_dtype_reason": engine.dtype_choice.reason,
        "head_dtypes_resolved": {
            "accumulator": str(engine.heads.dtype).removeprefix("torch."),
            "layers": str(engine.heads.module_dtype).removeprefix("torch."),
        },
        "offline": off,
        "server": srv_points,
        "comparison": compare(off, srv_points),
    }
    path = common.write_result("serve", ctx, payload)
    payload["plot"] = str(plot(payload, ctx))
    comp = payload["comparison"]
    for name, v in comp["per_task_set"].items():
        print(
            f"{name:10s} offline {v['offline_best_texts_per_s']:8.1f} texts/s  server "
            f"{v['server_best_texts_per_s']:8.1f}  ratio {v['server_over_offline']:.2f}"
        )
    print(
        f"all/embedding: offline {comp['all_over_embedding_offline']:.2f}, "
        f"server {comp['all_over_embedding_server']:.2f}  -> {path}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
