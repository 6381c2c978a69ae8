"""Overload: measure a real server's capacity, then offer 2x that for a bounded time.

What a user relies on when traffic exceeds capacity: excess requests are refused fast
(429 with Retry-After) instead of queueing without bound; the requests that are accepted
keep a latency bound set by the queue size; memory does not grow; and once the load stops
a normal request succeeds within seconds. Every one of these is a check below with its
bound written into the result JSON; any failed check makes the exit status 1.

    python -m benchmarks.overload                       # packaged MiniLM, 30 s at 2x
    python -m benchmarks.overload --backbone DIR --heads-dir DIR --seconds 10
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
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
    first_success_after,
    metric_value,
    open_loop,
    server_env,
    summarise,
    write_random_heads,
)
from engine.flags import EnvFlagParser, command_prefix, parse_with_env

RESULTS = Path(__file__).resolve().parent / "results"


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = EnvFlagParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--backbone", default=None, help="Backbone folder; default packaged MiniLM.")
    p.add_argument("--heads-dir", type=Path, default=None, help="Heads; default random heads.")
    p.add_argument("--threads", type=int, default=1, help="Server torch threads.")
    p.add_argument("--texts", type=int, default=8, help="Texts per request.")
    p.add_argument("--repeat", type=int, default=3, help="Sentences per text.")
    p.add_argument("--queue-size", type=int, default=16, help="Server queue (requests).")
    p.add_argument("--max-batch-size", type=int, default=16, help="Server windows per pass.")
    p.add_argument("--concurrency", type=int, default=8, help="Clients while measuring capacity.")
    p.add_argument("--capacity-seconds", type=float, default=15.0)
    p.add_argument("--factor", type=float, default=2.0, help="Offered load / capacity.")
    p.add_argument("--seconds", type=float, default=30.0, help="Duration of the overload.")
    p.add_argument("--refuse-bound-s", type=float, default=0.5, help="p99 bound for 429s.")
    p.add_argument("--recovery-bound-s", type=float, default=5.0)
    p.add_argument("--max-growth-mib", type=float, default=64.0, help="RSS growth bound.")
    p.add_argument("--out", type=Path, default=RESULTS / "overload-cpu.json")
    p.add_argument("--log", type=Path, default=None, help="Server log (default: a temp file).")
    return parse_with_env(p, argv, command_prefix("bench", "overload"))


def body_factory(texts: int, repeat: int) -> Any:
    """Requests heavy enough that the model, not HTTP, is the bottleneck (the load generator
    shares the machine and must offer twice what the server can do)."""
    sentences = " ".join([TEXT] * repeat)

    def make(i: int) -> dict[str, Any]:
        return {"texts": [f"{i}-{j} {sentences}" for j in range(texts)]}

    return make


def latency_bound(queue_size: int, capacity_rps: float) -> float:
    """An accepted request waits behind at most ``queue_size`` others, then runs itself.

    At ``capacity_rps`` that is (queue_size + 1) / capacity seconds; x3 (and at least 1 s)
    leaves room for a noisy shared machine without hiding an unbounded queue.
    """
    return max(1.0, 3.0 * (queue_size + 1) / capacity_rps)


def check(value: float | None, bound: float, higher_is_bad: bool = True) -> dict[str, Any]:
    ok = value is not None and (value <= bound if higher_is_bad else value >= bound)
    return {"value": value, "bound": bound, "ok": bool(ok)}


def evaluate(
    args: argparse.Namespace,
    capacity: float,
    overload: dict[str, Any],
    recovery_s: float | None,
    rss_growth: float,
    depth_after: float | None,
) -> dict[str, dict[str, Any]]:
    counts = overload["status_counts"]
    errors = sum(n for s, n in counts.items() if s not in ("200", "429"))
    refused = counts.get("429", 0)
    return {
        "refused_some_429": check(refused, 1, higher_is_bad=False),
        "every_429_has_retry_after": check(
            overload["refused_with_retry_after"], refused, higher_is_bad=False
        ),
        "refused_p99_s": check(overload["refused_latency"].get("p99_s"), args.refuse_bound_s),
        "accepted_p99_s": check(
            overload["accepted_latency"].get("p99_s"), latency_bound(args.queue_size, capacity)
        ),
        "no_errors_besides_429": check(errors, 0),
        "goodput_vs_capacity": check(
            overload["goodput_rps"] / capacity if capacity else None, 0.5, higher_is_bad=False
        ),
        "rss_growth_mib": check(rss_growth, args.max_growth_mib),
        "recovery_s": check(recovery_s, args.recovery_bound_s),
        "queue_depth_after": check(depth_after, 0),
        # the generator shares the machine: if it fell behind, the figures above are not valid
        "client_lag_p99_s": check(overload["client_lag_p99_s"], 0.25),
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Start the server, measure capacity, overload it, and return the result record."""
    with tempfile.TemporaryDirectory(prefix="sidetask-overload-") as tmp:
        heads = args.heads_dir or write_random_heads(args.backbone, Path(tmp) / "heads")
        settings = {
            "queue_size": args.queue_size,
            "max_batch_size": args.max_batch_size,
            "request_timeout_s": 60,
        }
        env = server_env(args.backbone, heads, args.threads, settings)
        log = args.log or Path(tmp) / "server.log"
        bodies = body_factory(args.texts, args.repeat)
        with ServerProcess(env, log) as server:
            ready_s = server.wait_ready()
            sampler = RssSampler(server.pid).start()
            asyncio.run(closed_loop(server.base, bodies, args.concurrency, 2.0))  # warm-up
            cap = asyncio.run(
                closed_loop(server.base, bodies, args.concurrency, args.capacity_seconds)
            )
            cap_summary = summarise(cap, args.capacity_seconds)
            capacity = float(cap_summary["goodput_rps"] or 0.0)
            if capacity <= 0:
                raise RuntimeError(f"no request succeeded:\n{server.log_text()}")
            rate = args.factor * capacity
            rss_before = sampler.samples[-1][1]
            t_over = sampler.now()
            outcomes = asyncio.run(open_loop(server.base, bodies, rate, args.seconds))
            t_stop = sampler.now()
            recovery_s = first_success_after(server.base, bodies(-1))
            depth_after = metric_value(server.base, "sidetask_queue_depth")
            samples = sampler.stop()
            exit_code = server.stop()
        over_summary = summarise(outcomes, args.seconds)
        during = [mib for t, mib in samples if t >= t_over]
        rss_growth = max(during) - rss_before if during else 0.0
        checks = evaluate(args, capacity, over_summary, recovery_s, rss_growth, depth_after)
        return {
            "benchmark": "overload",
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
            "machine": _machine(),
            "settings": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
            "server_settings": settings,
            "ready_s": ready_s,
            "capacity": {"rps": capacity, **cap_summary},
            "offered_rps": rate,
            "overload": over_summary,
            "timeline": _timeline(outcomes),
            "accepted_latency_bound_s": latency_bound(args.queue_size, capacity),
            "rss_mib": {"before_overload": rss_before, "max_during": max(during, default=None)},
            "rss_samples": [(round(t, 2), round(m, 1)) for t, m in samples],
            "overload_window_s": [t_over, t_stop],
            "recovery_s": recovery_s,
            "queue_depth_after": depth_after,
            "server_exit_code": exit_code,
            "checks": checks,
            "ok": all(c["ok"] for c in checks.values()) and exit_code == 0,
        }


def _timeline(outcomes: Sequence[Outcome]) -> list[dict[str, Any]]:
    """Per second of the overload: how many were accepted/refused and the accepted p99."""
    seconds: dict[int, list[Outcome]] = {}
    for o in outcomes:
        seconds.setdefault(int(o.sent), []).append(o)
    rows = []
    for s in sorted(seconds):
        group = seconds[s]
        ok = sorted(o.latency for o in group if o.status == 200)
        rows.append(
            {
                "second": s,
                "accepted": len(ok),
                "refused": sum(1 for o in group if o.status == 429),
                "other": sum(1 for o in group if o.status not in (200, 429)),
                "accepted_max_s": ok[-1] if ok else None,
            }
        )
    return rows


def _machine() -> dict[str, Any]:
    from benchmarks.common import cpu_model

    return {
        "cpu": cpu_model(),
        "logical_cores": os.cpu_count(),
        "load_average_at_end": list(os.getloadavg()),
        "python": platform.python_version(),
    }


def plot(record: dict[str, Any], path: Path) -> None:
    from benchmarks.common import new_figure, save_figure

    fig, (ax1, ax2) = new_figure(2)
    rows = record["timeline"]
    xs = [r["second"] for r in rows]
    ax1.bar(xs, [r["accepted"] for r in rows], label="200 accepted", color="tab:green")
    ax1.bar(
        xs,
        [r["refused"] for r in rows],
        bottom=[r["accepted"] for r in rows],
        label="429 refused",
        color="tab:orange",
    )
    ax1.set_xlabel("second of overload")
    ax1.set_ylabel("requests")
    ax1.legend()
    t, mib = zip(*record["rss_samples"], strict=True)
    ax2.plot(t, mib)
    lo, hi = record["overload_window_s"]
    ax2.axvspan(lo, hi, color="tab:orange", alpha=0.15, label="overload")
    ax2.set_xlabel("seconds since ready")
    ax2.set_ylabel("server RSS (MiB)")
    ax2.legend()
    recovery = record["recovery_s"]
    title = (
        f"capacity {record['capacity']['rps']:.1f} req/s, offered "
        f"{record['offered_rps']:.1f} req/s; "
        + (f"recovery {recovery:.2f} s" if recovery is not None else "no recovery")
    )
    save_figure(fig, path, title)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    record = run(args)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=2) + "\n")
    plot(record, args.out.with_suffix(".png"))
    for name, c in record["checks"].items():
        print(f"{'ok  ' if c['ok'] else 'FAIL'} {name}: {c['value']} (bound {c['bound']})")
    print(f"wrote {args.out}")
    return 0 if record["ok"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
