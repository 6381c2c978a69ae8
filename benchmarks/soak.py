"""Soak: moderate, varied load on a real server for a bounded time, RSS sampled throughout.

A leak shows only over time: this drives a `sidetask serve` process at a fraction of its
measured capacity (default 50 %) with varied requests (1-4 texts, short to multi-window,
different task sets, some Unicode, 1 in 20 asking for an unknown task), samples the
server's RSS every second, and fails (exit 1) if RSS after the warm-up grows more than
``--max-growth-mib`` above its level at the end of the warm-up, or if any request got an
answer other than 200 (or 422 for the deliberately unknown task).

    python -m benchmarks.soak                      # 10 minutes, packaged MiniLM
    python -m benchmarks.soak --seconds 60         # the CI length
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import statistics
import tempfile
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks.live_server import (
    TEXT,
    Outcome,
    RssSampler,
    ServerProcess,
    closed_loop,
    latency_summary,
    open_loop,
    server_env,
    write_random_heads,
)
from engine.flags import EnvFlagParser, command_prefix, parse_with_env

RESULTS = Path(__file__).resolve().parent / "results"
EXTRA = [
    "東京で会議があった。",
    "Ünïcödé naïve café",
    "emoji 🙂👍🏽 and ZWJ 👩‍👩‍👧",
    "مرحبا بالعالم",
]
TASK_SETS: list[list[str] | None] = [None, ["sentiment"], ["ner"], ["sentiment", "ner"]]


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = EnvFlagParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--backbone", default=None, help="Backbone folder; default packaged MiniLM.")
    p.add_argument("--heads-dir", type=Path, default=None, help="Heads; default random heads.")
    p.add_argument("--threads", type=int, default=1, help="Server torch threads.")
    p.add_argument("--seconds", type=float, default=600.0, help="Soak duration (CI: 60).")
    p.add_argument("--load", type=float, default=0.5, help="Offered load / capacity.")
    p.add_argument("--rate", type=float, default=None, help="Requests/s (skips measuring).")
    p.add_argument("--capacity-seconds", type=float, default=10.0)
    p.add_argument("--concurrency", type=int, default=4, help="Clients measuring capacity.")
    p.add_argument(
        "--warmup-s", type=float, default=None, help="Default: 20%% of the run, at least 5 s."
    )
    p.add_argument("--max-growth-mib", type=float, default=48.0, help="RSS growth bound.")
    p.add_argument("--interval", type=float, default=1.0, help="RSS sampling period (s).")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=RESULTS / "soak-cpu.json")
    p.add_argument("--log", type=Path, default=None, help="Server log (default: a temp file).")
    return parse_with_env(p, argv, command_prefix("bench", "soak"))


def body_factory(seed: int) -> Any:
    """Deterministic varied requests: request ``i`` is the same in every run."""

    def make(i: int) -> dict[str, Any]:
        rng = random.Random(seed * 1_000_003 + i)
        texts = []
        for j in range(rng.randint(1, 4)):
            words = TEXT.split()
            n = rng.choice([3, 12, 30, 120])  # up to several windows on short-window models
            body = " ".join(rng.choice(words) for _ in range(n))
            texts.append(f"{i}.{j} {body} {rng.choice(EXTRA)}")
        request: dict[str, Any] = {"texts": texts}
        if i % 20 == 19:
            request["tasks"] = ["no-such-task"]
        elif (tasks := TASK_SETS[i % len(TASK_SETS)]) is not None:
            request["tasks"] = tasks
        return request

    return make


def expected_status(i: int) -> int:
    return 422 if i % 20 == 19 else 200


def rss_verdict(
    samples: Sequence[tuple[float, float]], warmup_end: float, bound: float
) -> dict[str, Any]:
    """Growth = max RSS after the warm-up minus the median of the warm-up's last fifth."""
    warm = [(t, m) for t, m in samples if t <= warmup_end]
    after = [(t, m) for t, m in samples if t > warmup_end]
    tail = [m for t, m in warm if t >= 0.8 * warmup_end] or [m for _, m in warm]
    if not tail or not after:
        return {"ok": False, "reason": "too few RSS samples"}
    baseline = statistics.median(tail)
    growth = max(m for _, m in after) - baseline
    slope = None
    if len(after) >= 2:
        ts, ms = zip(*after, strict=True)
        slope = statistics.linear_regression(ts, ms).slope * 60.0  # MiB per minute
    return {
        "baseline_mib": baseline,
        "max_after_warmup_mib": max(m for _, m in after),
        "end_mib": after[-1][1],
        "growth_mib": growth,
        "bound_mib": bound,
        "slope_mib_per_min": slope,
        "ok": growth <= bound,
    }


def _buckets(outcomes: Sequence[Outcome], width: float = 10.0) -> list[dict[str, Any]]:
    groups: dict[int, list[float]] = {}
    for o in outcomes:
        if o.status == 200:
            groups.setdefault(int(o.sent // width), []).append(o.latency)
    return [
        {"start_s": k * width, **latency_summary(groups[k])} for k in sorted(groups) if groups[k]
    ]


def run(args: argparse.Namespace) -> dict[str, Any]:
    warmup = args.warmup_s if args.warmup_s is not None else max(5.0, 0.2 * args.seconds)
    bodies = body_factory(args.seed)
    with tempfile.TemporaryDirectory(prefix="sidetask-soak-") as tmp:
        heads = args.heads_dir or write_random_heads(args.backbone, Path(tmp) / "heads")
        env = server_env(args.backbone, heads, args.threads, {})
        log = args.log or Path(tmp) / "server.log"
        with ServerProcess(env, log) as server:
            ready_s = server.wait_ready()
            capacity = None
            rate = args.rate
            if rate is None:
                cap = asyncio.run(
                    closed_loop(server.base, bodies, args.concurrency, args.capacity_seconds)
                )
                ok = sum(1 for o in cap if o.status in (200, 422))
                capacity = ok / args.capacity_seconds
                rate = max(0.5, args.load * capacity)
            sampler = RssSampler(server.pid, args.interval).start()
            outcomes = asyncio.run(open_loop(server.base, bodies, rate, args.seconds))
            samples = sampler.stop()
            exit_code = server.stop()
            log_tail = server.log_text()[-4000:]
    unexpected = [
        {"i": i, "status": o.status}
        for i, o in enumerate(outcomes)
        if o.status != expected_status(i)
    ]
    rss = rss_verdict(samples, warmup, args.max_growth_mib)
    counts: dict[str, int] = {}
    for o in outcomes:
        counts[str(o.status)] = counts.get(str(o.status), 0) + 1
    ok = bool(rss["ok"]) and not unexpected and exit_code == 0
    return {
        "benchmark": "soak",
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "cpu": _cpu(),
            "logical_cores": os.cpu_count(),
            "load_average_at_end": list(os.getloadavg()),
            "python": platform.python_version(),
        },
        "settings": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "ready_s": ready_s,
        "capacity_rps": capacity,
        "offered_rps": rate,
        "warmup_s": warmup,
        "requests": len(outcomes),
        "status_counts": counts,
        "unexpected": unexpected[:50],
        "accepted_latency": latency_summary([o.latency for o in outcomes if o.status == 200]),
        "latency_by_10s": _buckets(outcomes),
        "rss": rss,
        "rss_samples": [(round(t, 2), round(m, 2)) for t, m in samples],
        "server_exit_code": exit_code,
        "server_log_tail": log_tail if not ok else "",
        "ok": ok,
    }


def _cpu() -> str:
    from benchmarks.common import cpu_model

    return cpu_model()


def plot(record: dict[str, Any], path: Path) -> None:
    from benchmarks.common import new_figure, save_figure

    fig, (ax1, ax2) = new_figure(2)
    t, mib = zip(*record["rss_samples"], strict=True)
    rss = record["rss"]
    ax1.plot(t, mib, label="server RSS")
    ax1.axvspan(0, record["warmup_s"], color="grey", alpha=0.15, label="warm-up")
    if "baseline_mib" in rss:
        ax1.axhline(rss["baseline_mib"] + rss["bound_mib"], color="red", ls="--", label="bound")
    ax1.set_xlabel("seconds")
    ax1.set_ylabel("MiB")
    ax1.legend()
    rows = record["latency_by_10s"]
    xs = [r["start_s"] for r in rows]
    ax2.plot(xs, [r["p50_s"] for r in rows], label="p50")
    ax2.plot(xs, [r["p99_s"] for r in rows], label="p99")
    ax2.set_xlabel("seconds")
    ax2.set_ylabel("latency of 200s (s)")
    ax2.legend()
    growth = rss.get("growth_mib")
    title = (
        f"soak {record['settings']['seconds']:g}s at {record['offered_rps']:.1f} req/s: "
        f"RSS growth {growth:.1f} MiB (bound {rss.get('bound_mib')}) "
        f"{'ok' if record['ok'] else 'FAIL'}"
    )
    save_figure(fig, path, title)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    record = run(args)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=2) + "\n")
    plot(record, args.out.with_suffix(".png"))
    rss = record["rss"]
    print(
        f"{'ok' if record['ok'] else 'FAIL'}: {record['requests']} requests "
        f"{record['status_counts']}, RSS growth {rss.get('growth_mib')} MiB "
        f"(bound {rss.get('bound_mib')}), slope {rss.get('slope_mib_per_min')} MiB/min"
    )
    print(f"wrote {args.out}")
    return 0 if record["ok"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
