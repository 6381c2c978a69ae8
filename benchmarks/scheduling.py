"""Q8: does the window scheduler keep small requests fast beside a giant one, stop work nobody
waits for, and cost nothing for a lone request?

On the packaged MiniLM with the shipped heads, a real ``sidetask serve`` subprocess on
loopback (same thread count as this process) and, in this process, the same model alone and
the engine. Texts are SST-2 dev sentences (a different one every request); the giant request
is IMDB dev reviews up to the server's token budget.

1. **lone** (concurrency 1): per round, the median latency of N requests for the backbone
   alone (tokenizer + forward + mean pooling in plain transformers), ``Engine.analyze`` and
   the served route, embedding only and all four tasks; ratios taken per round.
2. **giant** (concurrency 4): small single-sentence requests, p50/p99, with the server idle
   and while a maximum-size request runs.
3. **hangup**: a client sends a maximum-size request and hangs up once it runs; the time
   until the worker is free (the next small request's answer), per repeat.
Padding: ``sidetask_batch_padding_ratio`` (mean over each phase's micro-batches).

    python -m benchmarks.scheduling --threads 2          # about 4 minutes on 2 cores
    sidetask bench scheduling --threads 2 --repeats 5 --seconds 10
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import gzip
import json
import random
import socket
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import httpx

from benchmarks import common
from benchmarks.live_server import (
    LeanClient,
    ServerProcess,
    SocketClient,
    closed_loop,
    latency_summary,
    thread_cpu_ms,
    write_random_heads,
)
from engine.flags import EnvFlagParser, command_prefix, parse_with_env


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = EnvFlagParser(prog="sidetask bench scheduling", description=__doc__)
    common.add_common_arguments(p, repeats=5)
    p.add_argument("--requests", type=int, default=40, help="Lone requests per variant/round.")
    p.add_argument("--seconds", type=float, default=10.0, help="Length of each load phase.")
    p.add_argument("--budget", type=int, default=65536, help="The server's max_request_tokens.")
    p.add_argument("--data-dir", type=Path, default=Path("../shared/data"))
    p.add_argument(
        "--phases",
        default="lone,giant,hangup",
        help="Comma-separated phases to run (lone, giant, hangup); the plot needs all three.",
    )
    return parse_with_env(p, argv, command_prefix("bench", "scheduling"))


def sentences(data_dir: Path) -> list[str]:
    with (data_dir / "sst2" / "dev.tsv").open() as f:
        return [row["sentence"].strip() for row in csv.DictReader(f, delimiter="\t")]


def reviews(data_dir: Path) -> list[str]:
    path = data_dir / "imdb" / "dev.tsv"
    opener: Callable[..., Any] = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt") as f:
        return [row["text"] for row in csv.DictReader(f, delimiter="\t")]


def giant_body(
    engine: Any, texts: Sequence[str], budget: int, max_chars: int, tasks: list[str]
) -> dict[str, Any]:
    """Reviews joined into long texts (each under the server's character limit) until the
    next one would pass the token budget: the largest request the server accepts."""
    from engine.core import AnalyzeRequest

    chosen: list[str] = []
    current = ""
    for review in texts:
        joined = f"{current} {review}".strip()
        if len(joined) > max_chars:
            chosen, current = [*chosen, current], review
        else:
            current = joined
        if engine.prepare(AnalyzeRequest([*chosen, current])).tokens > budget:
            current = current[: -len(review)].strip()
            break
    return {"texts": [t for t in [*chosen, current] if t], "tasks": tasks}


def model_alone(engine: Any) -> Callable[[str], object]:
    import torch

    model, tok = engine.backbone.model, engine.backbone.tokenizer
    limit = engine.backbone.info.max_length

    device = engine.backbone.device

    def run(text: str) -> object:
        x = tok([text], return_tensors="pt", truncation=True, max_length=limit).to(device)
        with torch.inference_mode():
            hidden = model(**x).last_hidden_state
            mask = x["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1)
            # .tolist(): the engine hands back Python floats too (and it waits for a GPU)
            return torch.nn.functional.normalize(pooled, dim=-1).float().cpu().tolist()

    return run


def lone(
    engine: Any,
    base: str,
    texts: Sequence[str],
    tasks: list[str],
    args: argparse.Namespace,
    server_pid: int | None = None,
) -> dict[str, Any]:
    """Latency per variant and, robust to a busy machine, CPU per request: the server's
    event-loop thread and all its threads (``server_pid``), this process's thread for the
    in-process variants."""
    rng = random.Random(0)
    alone = model_alone(engine)
    client = httpx.Client(base_url=base, timeout=60)
    lean = LeanClient(base)
    raw = SocketClient(base)
    variants: dict[str, Callable[[str], object]] = {
        "model_alone_embedding": alone,
        "engine_embedding": lambda t: engine.analyze([t], ["embedding"]),
        "engine_all": lambda t: engine.analyze([t], tasks),
        "served_embedding": lambda t: lean.analyze([t], ["embedding"]),
        "served_all": lambda t: lean.analyze([t], tasks),
        "served_embedding_socket": lambda t: raw.analyze([t], ["embedding"]),
        "served_all_socket": lambda t: raw.analyze([t], tasks),
        "served_embedding_httpx": lambda t: _ok(
            client.post("/analyze", json={"texts": [t], "tasks": ["embedding"]})
        ),
        "served_all_httpx": lambda t: _ok(
            client.post("/analyze", json={"texts": [t], "tasks": tasks})
        ),
    }
    medians: dict[str, list[float]] = {name: [] for name in variants}
    cpu: dict[str, list[float]] = {}  # ms of CPU per request
    names = list(variants)
    for r in range(args.warmup + args.repeats):
        for name in names if r % 2 == 0 else names[::-1]:
            latencies = []
            served = name.startswith("served") and server_pid is not None
            before = thread_cpu_ms(server_pid) if served and server_pid else {}
            own = time.thread_time()
            for _ in range(args.requests):
                text = rng.choice(texts)
                t0 = time.perf_counter()
                variants[name](text)
                latencies.append(time.perf_counter() - t0)
            own = (time.thread_time() - own) * 1000 / args.requests
            after = thread_cpu_ms(server_pid) if served and server_pid else {}
            if r < args.warmup:
                continue
            medians[name].append(statistics.median(latencies))
            if served and server_pid:
                spent = {t: after[t] - before.get(t, 0.0) for t in after}
                cpu.setdefault(f"{name}:server_event_loop", []).append(
                    spent.get(server_pid, 0.0) / args.requests
                )
                cpu.setdefault(f"{name}:server_all_threads", []).append(
                    sum(spent.values()) / args.requests
                )
            cpu.setdefault(f"{name}:this_process", []).append(own)
    client.close()
    lean.close()
    raw.close()
    return {
        "client": "served_*: a keep-alive http.client connection (stdlib, ~0.5 ms of client "
        "CPU per request); served_*_socket: request bytes over a keep-alive socket (as lean "
        "as curl or wrk); served_*_httpx: httpx.Client (the client's own cost is larger)",
        "p50_s": {n: common.summary(v) for n, v in medians.items()},
        "cpu_ms_per_request": {n: common.summary(v) for n, v in cpu.items()},
        "ratios": {
            "served_embedding/model_alone": common.paired_ratio(
                medians, "served_embedding", "model_alone_embedding"
            ),
            "served_all/engine_all": common.paired_ratio(medians, "served_all", "engine_all"),
            "served_embedding_socket/model_alone": common.paired_ratio(
                medians, "served_embedding_socket", "model_alone_embedding"
            ),
            "served_all_socket/engine_all": common.paired_ratio(
                medians, "served_all_socket", "engine_all"
            ),
            "served_embedding_httpx/model_alone": common.paired_ratio(
                medians, "served_embedding_httpx", "model_alone_embedding"
            ),
            "served_all_httpx/engine_all": common.paired_ratio(
                medians, "served_all_httpx", "engine_all"
            ),
            "engine_embedding/model_alone": common.paired_ratio(
                medians, "engine_embedding", "model_alone_embedding"
            ),
        },
    }


def _ok(r: httpx.Response) -> httpx.Response:
    if r.status_code != 200:
        raise RuntimeError(f"{r.status_code}: {r.text[:300]}")
    return r


def histogram_mean(base: str, name: str) -> tuple[float, float]:
    """(sum, count) of a histogram on /metrics."""
    total = count = 0.0
    for line in httpx.get(base + "/metrics", timeout=10).text.splitlines():
        if line.startswith(name + "_sum "):
            total = float(line.split()[1])
        elif line.startswith(name + "_count "):
            count = float(line.split()[1])
    return total, count


class GiantClient:
    """Sends the giant request over a raw socket and hangs up when told to."""

    def __init__(self, base: str, body: dict[str, Any]) -> None:

        host, port = base.removeprefix("http://").split(":")
        payload = json.dumps(body).encode()
        self.sock = socket.create_connection((host, int(port)))
        self.sock.sendall(
            b"POST /analyze HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n"
            + f"Content-Length: {len(payload)}\r\n\r\n".encode()
            + payload
        )

    def hang_up(self) -> None:
        self.sock.close()


def wait_running(base: str, before: float, limit: float = 120.0) -> None:
    """Until the server has run a micro-batch more than ``before`` (the giant has started)."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if histogram_mean(base, "sidetask_batch_windows")[1] > before:
            return
        time.sleep(0.02)
    raise RuntimeError("the giant request never started")


def small_phase(
    base: str, texts: Sequence[str], tasks: list[str], seconds: float, seed: int
) -> dict[str, Any]:
    rng = random.Random(seed)

    def body(i: int) -> dict[str, Any]:
        return {"texts": [rng.choice(texts)], "tasks": tasks}

    padding0 = histogram_mean(base, "sidetask_batch_padding_ratio")
    outcomes = asyncio.run(closed_loop(base, body, 4, seconds))
    padding1 = histogram_mean(base, "sidetask_batch_padding_ratio")
    ok = [o.latency for o in outcomes if o.status == 200]
    steps = padding1[1] - padding0[1]
    return {
        "small": latency_summary(ok),
        "failed": sum(1 for o in outcomes if o.status != 200),
        "padding_ratio_mean": (padding1[0] - padding0[0]) / steps if steps else None,
        "micro_batches": steps,
    }


def giant_vs_idle(
    base: str, texts: Sequence[str], giant: dict[str, Any], args: argparse.Namespace
) -> dict[str, Any]:
    rounds = []
    for r in range(max(1, args.repeats // 2)):
        idle = small_phase(base, texts, giant["tasks"], args.seconds, seed=r)
        client = GiantClient(base, giant)
        wait_running(base, histogram_mean(base, "sidetask_batch_windows")[1])
        busy = small_phase(base, texts, giant["tasks"], args.seconds, seed=100 + r)
        client.hang_up()
        wait_idle(base)
        rounds.append({"idle": idle, "with_giant": busy})
    p99 = [x["with_giant"]["small"]["p99_s"] / x["idle"]["small"]["p99_s"] for x in rounds]
    p50 = [x["with_giant"]["small"]["p50_s"] / x["idle"]["small"]["p50_s"] for x in rounds]
    return {
        "rounds": rounds,
        "p99_ratio_giant/idle": common.summary(p99),
        "p50_ratio_giant/idle": common.summary(p50),
    }


def wait_idle(base: str, limit: float = 300.0) -> None:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        depth = [
            line
            for line in httpx.get(base + "/metrics", timeout=10).text.splitlines()
            if line.startswith("sidetask_queue_depth ")
        ]
        if depth and float(depth[0].split()[1]) == 0:
            return
        time.sleep(0.05)
    raise RuntimeError("the server never became idle")


def hangup(base: str, texts: Sequence[str], giant: dict[str, Any], repeats: int) -> dict[str, Any]:
    freed, idle_latency = [], []
    with httpx.Client(base_url=base, timeout=300) as client:
        for r in range(repeats):
            body = {"texts": [texts[r]], "tasks": giant["tasks"]}
            t0 = time.perf_counter()
            _ok(client.post("/analyze", json=body))
            idle_latency.append(time.perf_counter() - t0)
            giant_client = GiantClient(base, giant)
            wait_running(base, histogram_mean(base, "sidetask_batch_windows")[1])
            t0 = time.perf_counter()
            giant_client.hang_up()
            _ok(client.post("/analyze", json=body))
            freed.append(time.perf_counter() - t0)
    return {
        "seconds_until_free": common.summary(freed),
        "small_request_idle_s": common.summary(idle_latency),
    }


def plot(payload: dict[str, Any], ctx: common.BenchContext) -> Path:
    fig, (a, b) = common.new_figure(2)
    ratios = payload["lone"]["ratios"]
    names = list(ratios)
    med, err = common.median_and_error([ratios[n] for n in names])
    a.bar(range(len(names)), med, yerr=err, color="#4c72b0")
    a.axhline(1.2, color="grey", linestyle="--", linewidth=1)
    a.set_xticks(range(len(names)), [n.replace("/", "\n/ ") for n in names], fontsize=7)
    a.set_ylabel("p50 latency ratio (c=1)")
    a.set_title("lone request: served vs model/engine", fontsize=9)
    rounds = payload["giant"]["rounds"]
    for key, colour in (("idle", "#55a868"), ("with_giant", "#c44e52")):
        p50 = [x[key]["small"]["p50_s"] * 1000 for x in rounds]
        p99 = [x[key]["small"]["p99_s"] * 1000 for x in rounds]
        b.scatter(["p50"] * len(p50), p50, color=colour, label=key)
        b.scatter(["p99"] * len(p99), p99, color=colour)
    b.set_yscale("log")
    b.set_ylabel("small request latency, ms (c=4)")
    b.set_title("small requests beside a max-size request", fontsize=9)
    b.legend(fontsize=8)
    path = common.plot_path("scheduling", ctx)
    common.save_figure(fig, path, f"window scheduler, {common.cpu_model()}, {ctx.threads} threads")
    return path


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    ctx = common.setup(args)
    from engine.core import AnalyzeRequest
    from engine.loading import build_engine
    from server.settings import Settings

    with tempfile.TemporaryDirectory() as tmp:
        env = {
            "SIDETASK_THREADS": str(args.threads),
            "SIDETASK_MAX_REQUEST_TOKENS": str(args.budget),
            "SIDETASK_LOG_LEVEL": "warning",
            "SIDETASK_REQUEST_TIMEOUT_S": "600",
        }
        values: dict[str, Any] = {"threads": args.threads, "max_request_tokens": args.budget}
        if args.backbone:  # another backbone: random heads of the method's sizes
            heads = write_random_heads(args.backbone, Path(tmp) / "heads")
            values.update(backbone=args.backbone, heads_dir=[heads])
            env.update(SIDETASK_BACKBONE=args.backbone, SIDETASK_HEADS_DIR=str(heads))
        settings = Settings(**values)
        engine = build_engine(settings)
        tasks = common.workload_tasks(engine)  # all four tasks
        texts = sentences(args.data_dir)
        giant = giant_body(
            engine, reviews(args.data_dir), args.budget, settings.max_text_chars, tasks
        )
        giant_tokens = engine.prepare(AnalyzeRequest(giant["texts"])).tokens
        with ServerProcess(env, Path(tmp) / "server.log") as srv:
            ready_s = srv.wait_ready()
            phases = {p.strip() for p in args.phases.split(",")}
            payload: dict[str, Any] = {
                "server_ready_s": ready_s,
                "tasks": tasks,
                "giant_request": {"texts": len(giant["texts"]), "tokens": giant_tokens},
            }
            if "lone" in phases:
                payload["lone"] = lone(engine, srv.base, texts, tasks, args, srv.pid)
            if "giant" in phases:
                payload["giant"] = giant_vs_idle(srv.base, texts, giant, args)
            if "hangup" in phases:
                payload["hangup"] = hangup(srv.base, texts, giant, max(3, args.repeats // 2))
            payload["server_exit_code"] = srv.stop()
    path = common.write_result("scheduling", ctx, payload)
    report(payload, ctx)
    print(f"wrote {path}")
    return 0


def report(payload: dict[str, Any], ctx: common.BenchContext) -> None:
    """Print the headline ratios of the phases that ran; plot when all three did."""
    for name, stats in payload.get("lone", {}).get("ratios", {}).items():
        print(f"{name}: {stats['median']:.3f} ({stats['min']:.3f}-{stats['max']:.3f})")
    if "giant" in payload:
        ratio = payload["giant"]["p99_ratio_giant/idle"]["median"]
        print(f"small p99 with giant / idle: {ratio:.2f}")
    if "hangup" in payload:
        free = payload["hangup"]["seconds_until_free"]["median"]
        print(f"worker free after hang-up: {free:.3f} s")
    if all(key in payload for key in ("lone", "giant", "hangup")):
        print(f"plot: {plot(payload, ctx)}")


if __name__ == "__main__":
    raise SystemExit(main())
