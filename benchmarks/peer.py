"""Question 7: infinity-emb vs sidetask serving the same MiniLM over loopback HTTP.

Three targets under the same closed-loop load (``--concurrency`` clients, one text per
request, SST-2 dev sentences): infinity-emb's /embeddings, sidetask's /analyze asking for
the embedding only, and sidetask asking for the embedding + 3 heads. Both servers run side
by side with the same pinned thread count; load rounds alternate between targets (ABCCBA)
so the shared machine's drift hits all alike; ratios are per round.

infinity-emb pins numpy<2 and transformers<5, so it lives in its own venv (see
docs/benchmarks.md); ``--infinity`` points at its ``infinity_emb`` executable.

    sidetask bench peer --infinity /tmp/infvenv/bin/infinity_emb --seconds 10 --repeats 5
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

from benchmarks import common, workload
from server.env_flags import command_prefix, parse_with_env

NAME = "peer"
SST2_DEV = Path(__file__).resolve().parents[2] / "shared" / "data" / "sst2" / "dev.tsv"
FALLBACK = "The film's quiet pacing lets every scene breathe, and the cast makes it work."


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sidetask bench peer", description=__doc__)
    common.add_common_arguments(parser)
    parser.add_argument("--infinity", default=shutil.which("infinity_emb") or "")
    parser.add_argument("--concurrency", type=int, default=16, help="Clients in flight.")
    parser.add_argument("--seconds", type=float, default=10.0, help="Load per target per round.")
    parser.add_argument("--texts", type=Path, default=SST2_DEV, help="TSV, text first column.")
    parser.add_argument("--heads-dir", type=Path, default=None, help="3 heads; default random.")
    parser.add_argument("--base-port", type=int, default=18700)
    return parser


def load_texts(path: Path, limit: int = 512) -> list[str]:
    """Realistic short texts: SST-2 dev sentences (about 20 words), or one fallback text."""
    if not path.is_file():
        return [FALLBACK]
    lines = path.read_text().splitlines()[1 : limit + 1]
    return [line.split("\t")[0].strip() for line in lines if line.strip()]


@contextmanager
def server(cmd: Sequence[str], env: dict[str, str], ready_url: str, log: Path) -> Iterator[None]:
    """Start a server process, wait until ``ready_url`` answers 200, stop it (by pid) after."""
    import httpx

    with log.open("w") as out:
        proc = subprocess.Popen(list(cmd), env=env, stdout=out, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 300
            while time.monotonic() < deadline:
                if proc.poll() is not None:
                    raise RuntimeError(f"{cmd[0]} exited early; see {log}")
                try:
                    if httpx.get(ready_url, timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                time.sleep(0.5)
            else:
                raise RuntimeError(f"{ready_url} not ready after 300 s; see {log}")
            yield
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


async def _load(
    url: str, body: Callable[[str], dict[str, Any]], texts: list[str], clients: int, secs: float
) -> dict[str, Any]:
    """Closed loop: ``clients`` workers, each sending the next text as soon as it has an answer."""
    import httpx

    latencies: list[float] = []
    errors = 0
    counter = iter(range(10**9))
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(timeout=60, limits=limits) as client:
        stop = time.perf_counter() + secs

        async def worker() -> None:
            nonlocal errors
            while time.perf_counter() < stop:
                text = texts[next(counter) % len(texts)]
                start = time.perf_counter()
                response = await client.post(url, json=body(text))
                if response.status_code == 200:
                    latencies.append(time.perf_counter() - start)
                else:
                    errors += 1

        began = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(clients)))
        elapsed = time.perf_counter() - began
    latencies.sort()
    return {
        "requests_per_s": len(latencies) / elapsed,
        "errors": errors,
        "latencies": latencies,
    }


def _percentile(values: Sequence[float], q: float) -> float:
    if not values:
        return float("nan")
    return values[min(len(values) - 1, int(q * len(values)))]


def _random_heads(folder: Path, backbone_dir: str) -> Path:
    """Three heads with the method's sizes (sentiment-, CoLA-, NER-like), saved for the server."""
    from heads.io import save_head
    from models.backbone import Backbone

    info = Backbone.load(backbone_dir).info
    for i, name in enumerate(("sentiment", "cola", "ner")):
        kind = workload.head_kind(i)
        head = workload.bench_head(info, name, kind, 128 if kind == "token" else 64, i)
        save_head(head, folder / name)
    return folder


def _targets(model: str, heads: list[str], ports: dict[str, int]) -> dict[str, tuple[str, Any]]:
    inf = f"http://127.0.0.1:{ports['infinity']}/embeddings"
    side = f"http://127.0.0.1:{ports['sidetask']}/analyze"
    return {
        "infinity embedding": (inf, lambda t: {"model": model, "input": [t]}),
        "sidetask embedding": (side, lambda t: {"texts": [t], "tasks": ["embedding"]}),
        "sidetask embedding + 3 heads": (
            side,
            lambda t: {"texts": [t], "tasks": ["embedding", *heads]},
        ),
    }


def measure(ctx: common.BenchContext, args: argparse.Namespace) -> dict[str, Any]:
    from models.defaults import default_backbone_path

    if not args.infinity or not Path(args.infinity).exists():
        raise SystemExit("infinity-emb not found: pass --infinity PATH (see docs/benchmarks.md)")
    model_dir = ctx.backbone or str(default_backbone_path())
    texts = load_texts(args.texts)
    threads = str(ctx.threads)
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "DO_NOT_TRACK": "1",
        "INFINITY_ANONYMOUS_USAGE_STATS": "0",
        "OMP_NUM_THREADS": threads,
        "MKL_NUM_THREADS": threads,
        "TOKENIZERS_PARALLELISM": "false",
    }
    ports = {"infinity": args.base_port, "sidetask": args.base_port + 1}
    with ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        heads_dir = args.heads_dir or _random_heads(tmp / "heads", model_dir)
        heads = sorted(p.name for p in heads_dir.iterdir() if (p / "manifest.json").is_file())
        infinity_cmd = [args.infinity, "v2", "--model-id", model_dir, "--served-model-name"]
        infinity_cmd += ["minilm", "--engine", "torch", "--device", ctx.device.type]
        infinity_cmd += ["--port", str(ports["infinity"]), "--host", "127.0.0.1"]
        sidetask_cmd = [sys.executable, "-m", "server.cli", "serve", "--device", ctx.device.type]
        sidetask_cmd += ["--threads", threads, "--heads-dir", str(heads_dir)]
        sidetask_cmd += ["--port", str(ports["sidetask"]), "--log-level", "warning"]
        if ctx.backbone:
            sidetask_cmd += ["--backbone", ctx.backbone]
        dtype = str(ctx.dtype).split(".")[-1]
        if dtype != "float32":
            sidetask_cmd += ["--dtype", dtype]
            infinity_cmd += ["--dtype", dtype]
        sidetask_cmd += ["--head-dtype", common.server_head_dtype(ctx)]
        stack.enter_context(
            server(
                infinity_cmd,
                env,
                f"http://127.0.0.1:{ports['infinity']}/health",
                tmp / "infinity.log",
            )
        )
        stack.enter_context(
            server(
                sidetask_cmd,
                env,
                f"http://127.0.0.1:{ports['sidetask']}/readyz",
                tmp / "sidetask.log",
            )
        )
        targets = _targets("minilm", heads, ports)
        rounds: dict[str, list[dict[str, Any]]] = {n: [] for n in targets}
        names = list(targets)
        for r in range(ctx.warmup + ctx.repeats):
            for name in names if r % 2 == 0 else names[::-1]:
                url, body = targets[name]
                got = asyncio.run(_load(url, body, texts, args.concurrency, args.seconds))
                if r >= ctx.warmup:
                    rounds[name].append(got)
                print(f"round {r} {name}: {got['requests_per_s']:.1f} req/s", flush=True)
        breakdown = server_breakdown(f"http://127.0.0.1:{ports['sidetask']}/metrics")
    payload = _summarise(rounds, heads, args, model_dir, len(texts))
    payload["sidetask_head_dtype"] = common.server_head_dtype(ctx)
    payload["sidetask_server_breakdown"] = breakdown
    return payload


def server_breakdown(metrics_url: str) -> dict[str, Any]:
    """Where sidetask's worker spent its time (its own Prometheus metrics, all rounds)."""
    import httpx
    from prometheus_client.parser import text_string_to_metric_families

    text = httpx.get(metrics_url, timeout=10).text
    sums: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "sidetask_stage_duration_seconds_sum":
                sums[f"stage {sample.labels['stage']} s"] = sample.value
            elif sample.name in ("sidetask_batch_size_sum", "sidetask_batch_size_count"):
                sums[sample.name] = sample.value
    batches = sums.pop("sidetask_batch_size_count", 0.0)
    requests = sums.pop("sidetask_batch_size_sum", 0.0)
    return {
        "batches": batches,
        "mean_requests_per_batch": requests / batches if batches else None,
        **sums,
    }


def _summarise(
    rounds: dict[str, list[dict[str, Any]]],
    heads: list[str],
    args: argparse.Namespace,
    model_dir: str,
    n_texts: int,
) -> dict[str, Any]:
    targets: dict[str, Any] = {}
    rates = {n: [r["requests_per_s"] for r in rs] for n, rs in rounds.items()}
    for name, rs in rounds.items():
        lat = sorted(x for r in rs for x in r["latencies"])
        targets[name] = {
            "requests_per_s": common.summary(rates[name]),
            "latency_ms": {
                "p50": _percentile(lat, 0.50) * 1000,
                "p95": _percentile(lat, 0.95) * 1000,
                "p99": _percentile(lat, 0.99) * 1000,
                "mean": statistics.fmean(lat) * 1000 if lat else float("nan"),
            },
            "errors": sum(r["errors"] for r in rs),
        }
    peer = "infinity embedding"
    return {
        "model": model_dir,
        "heads": heads,
        "load": {
            "concurrency": args.concurrency,
            "seconds_per_round": args.seconds,
            "texts": f"{n_texts} texts from {args.texts.name}, one per request",
        },
        "targets": targets,
        "ratios_to_peer": {
            name: common.paired_ratio(rates, name, peer) for name in rates if name != peer
        },
        "targets_met": {
            "sidetask embedding >= peer": common.paired_ratio(rates, "sidetask embedding", peer)[
                "median"
            ]
            >= 1.0,
            "embedding + 3 heads >= 85% of peer": common.paired_ratio(
                rates, "sidetask embedding + 3 heads", peer
            )["median"]
            >= 0.85,
        },
    }


def plot(payload: dict[str, Any], ctx: common.BenchContext) -> None:
    fig, (ax_r, ax_l) = common.new_figure(2)
    names = list(payload["targets"])
    short = [
        n.replace("sidetask ", "sidetask\n").replace("infinity ", "infinity-emb\n") for n in names
    ]
    rates = [payload["targets"][n]["requests_per_s"] for n in names]
    med, err = common.median_and_error(rates)
    ax_r.bar(range(len(names)), med, yerr=err, capsize=4, color=["C7", "C0", "C2"])
    ax_r.set_xticks(range(len(names)), short, fontsize=8)
    ax_r.set_ylabel("requests / s (1 text each)")
    p50 = [payload["targets"][n]["latency_ms"]["p50"] for n in names]
    p99 = [payload["targets"][n]["latency_ms"]["p99"] for n in names]
    x = range(len(names))
    ax_l.bar([i - 0.2 for i in x], p50, 0.4, label="p50")
    ax_l.bar([i + 0.2 for i in x], p99, 0.4, label="p99")
    ax_l.set_xticks(list(x), short, fontsize=8)
    ax_l.set_ylabel("latency (ms)")
    ax_l.legend(fontsize=8)
    load = payload["load"]
    title = (
        f"Peer: infinity-emb vs sidetask, MiniLM ({ctx.device.type}, {ctx.threads} threads each, "
        f"{load['concurrency']} clients)"
    )
    common.save_figure(fig, common.plot_path(NAME, ctx), title)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_with_env(build_parser(), argv, command_prefix("bench", "peer"))
    ctx = common.setup(args)
    payload = measure(ctx, args)
    path = common.write_result(NAME, ctx, payload)
    plot(payload, ctx)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
