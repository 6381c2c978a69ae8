"""Question 7: infinity-emb vs sidetask serving the same MiniLM over loopback HTTP.

Per precision (``--precisions``: float32 = both servers' defaults, bfloat16 = ``--dtype
bfloat16`` on both) three targets under the same closed-loop load (``--concurrency``
clients, ``--texts-per-request`` different SST-2 dev sentences of 12-31 words in every
request): infinity-emb's /embeddings, sidetask's /analyze asking for the embedding only,
and for the embedding + 3 heads; with ``--infinity-onnx DIR`` also infinity's ONNX engine
(a model folder with an exported ``onnx/model.onnx``). All servers run side by side with the
same pinned thread count; load rounds alternate between all targets (ABCCBA) so the shared
machine's drift hits all alike; ratios are per round: to infinity at the same precision and
to infinity's best target of that round. Throughput credits each answered request with the
share of its lifetime inside the window (benchmarks/loadgen.py). Clock: wall (HTTP load).

infinity-emb pins numpy<2 and transformers<5, so it lives in its own venv (see
docs/benchmarks.md); ``--infinity`` points at its ``infinity_emb`` executable.

    sidetask bench peer --infinity /tmp/infvenv/bin/infinity_emb --seconds 10 --repeats 5
    sidetask bench peer --infinity ... --texts-per-request 16 --concurrency 4   # issue 20's load
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
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

from benchmarks import common, loadgen, workload
from benchmarks.live_server import Outcome
from engine.flags import EnvFlagParser, command_prefix, parse_with_env

NAME = "peer"
SST2_DEV = Path(__file__).resolve().parents[2] / "shared" / "data" / "sst2" / "dev.tsv"
FALLBACK = "The film's quiet pacing lets every scene breathe, and the cast makes it work."


def build_parser() -> EnvFlagParser:
    parser = EnvFlagParser(prog="sidetask bench peer", description=__doc__)
    common.add_common_arguments(parser)
    parser.add_argument("--infinity", default=shutil.which("infinity_emb") or "")
    parser.add_argument("--concurrency", type=int, default=16, help="Clients in flight.")
    parser.add_argument("--seconds", type=float, default=10.0, help="Load per target per round.")
    parser.add_argument("--texts", type=Path, default=SST2_DEV, help="TSV, text first column.")
    parser.add_argument("--heads-dir", type=Path, default=None, help="3 heads; default random.")
    parser.add_argument("--base-port", type=int, default=18700)
    parser.add_argument("--texts-per-request", type=int, default=1, help="Texts per request.")
    parser.add_argument(
        "--precisions",
        default="float32,bfloat16",
        help="float32 (both pinned to float32; infinity's default), bfloat16 (--dtype "
        "bfloat16 on both) and/or defaults (sidetask with no dtype or heads flags: dtype auto "
        "and the shipped heads, against infinity's default, which needs float32 in the list).",
    )
    parser.add_argument(
        "--infinity-onnx",
        type=Path,
        default=None,
        help="Model folder with onnx/model.onnx: adds infinity's ONNX engine (optimum).",
    )
    return parser


def load_texts(path: Path, limit: int = 512) -> list[str]:
    """Realistic short texts: SST-2 dev sentences, or one fallback text."""
    if not path.is_file():
        return [FALLBACK]
    lines = path.read_text().splitlines()[1 : limit + 1]
    return [line.split("\t")[0].strip() for line in lines if line.strip()]


def load_pool(path: Path) -> list[str]:
    """Sentences of 12-31 words (issue 20's load); all sentences if too few are that long."""
    pool = loadgen.sentence_pool(path)
    return pool if path.is_file() and len(pool) >= 16 else load_texts(path)


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
    url: str,
    body: Callable[[list[str]], dict[str, Any]],
    texts: list[str],
    clients: int,
    secs: float,
    per_request: int = 1,
) -> dict[str, Any]:
    """Closed loop: ``clients`` workers, each sending the next texts as soon as it has an
    answer; every request different. Texts/s credit each answer's share inside the window."""
    import httpx

    outcomes: list[Outcome] = []
    counter = iter(range(10**9))
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(timeout=60, limits=limits) as client:
        began = time.perf_counter()

        async def worker() -> None:
            while time.perf_counter() - began < secs:
                batch = loadgen.request_texts(texts, next(counter), per_request)
                start = time.perf_counter()
                response = await client.post(url, json=body(batch))
                outcomes.append(
                    Outcome(start - began, response.status_code, time.perf_counter() - start)
                )

        await asyncio.gather(*(worker() for _ in range(clients)))
    texts_per_s = loadgen.credited_texts_per_s(outcomes, per_request, secs)
    return {
        "texts_per_s": texts_per_s,
        "requests_per_s": texts_per_s / per_request,
        "errors": sum(1 for o in outcomes if o.status != 200),
        "latencies": sorted(o.latency for o in outcomes if o.status == 200),
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
        head = workload.bench_head(info, name, kind, workload.bench_k(kind), i)
        save_head(head, folder / name)
    return folder


PEER = "infinity embedding"
SIDE = ("sidetask embedding", "sidetask embedding + 3 heads")
#: Issue 20's targets: sidetask / infinity at the same precision, by precision; "defaults"
#: is each server as it starts without flags (sidetask: dtype auto, the shipped heads).
GOALS = {"float32": (1.3, 1.15), "bfloat16": (1.4, 1.2), "defaults": (1.3, 1.15)}
DEFAULTS = "defaults"


def peer_of(precision: str) -> str:
    """The infinity target a sidetask target is compared with (its default is float32)."""
    return label(PEER, "float32" if precision == DEFAULTS else precision)


def label(name: str, precision: str) -> str:
    """Target names: float32 (both defaults) keeps the historical names."""
    return name if precision == "float32" else f"{name} ({precision})"


def _targets(
    model: str,
    heads: list[str],
    ports: dict[str, int],
    precisions: Sequence[str],
    default_heads: Sequence[str] = (),
) -> dict[str, tuple[str, Any]]:
    out: dict[str, tuple[str, Any]] = {}
    for p in precisions:
        side = f"http://127.0.0.1:{ports[f'sidetask {p}']}/analyze"
        if p != DEFAULTS:
            inf = f"http://127.0.0.1:{ports[f'infinity {p}']}/embeddings"
            out[label(PEER, p)] = (inf, lambda t: {"model": model, "input": t})
        tasks = ["embedding", *(default_heads if p == DEFAULTS else heads)]
        out[label(SIDE[0], p)] = (side, lambda t: {"texts": t, "tasks": ["embedding"]})
        out[label(SIDE[1], p)] = (side, lambda t, tasks=tasks: {"texts": t, "tasks": tasks})
    if "infinity onnx" in ports:
        url = f"http://127.0.0.1:{ports['infinity onnx']}/embeddings"
        out[label(PEER, "onnx")] = (url, lambda t: {"model": model, "input": t})
    return out


def _env(threads: str) -> dict[str, str]:
    return {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "DO_NOT_TRACK": "1",
        "INFINITY_ANONYMOUS_USAGE_STATS": "0",
        "OMP_NUM_THREADS": threads,
        "MKL_NUM_THREADS": threads,
        "TOKENIZERS_PARALLELISM": "false",
    }


def commands(
    ctx: common.BenchContext,
    args: argparse.Namespace,
    model_dir: str,
    heads_dir: Path,
    precisions: Sequence[str],
) -> dict[str, tuple[list[str], int, str]]:
    """Server name -> (command, port, readiness path): one infinity and one sidetask per
    precision (float32: infinity's default, and sidetask pinned to float32, since its own
    default ``auto`` may pick bfloat16 where a fidelity gate passed), optionally infinity ONNX."""
    out: dict[str, tuple[list[str], int, str]] = {}
    port = args.base_port
    for p in precisions:
        if p == DEFAULTS:  # sidetask as `sidetask serve` starts: no dtype or heads flags
            side = [sys.executable, "-m", "cli.main", "serve", "--device", ctx.device.type]
            side += ["--threads", str(ctx.threads), "--log-level", "warning"]
            side += ["--backbone", ctx.backbone] if ctx.backbone else []
            out[f"sidetask {p}"] = ([*side, "--port", str(port + 1)], port + 1, "/readyz")
            port += 2
            continue
        dtype = [] if p == "float32" else ["--dtype", p]
        inf = [args.infinity, "v2", "--model-id", model_dir, "--served-model-name", "minilm"]
        inf += ["--engine", "torch", "--device", ctx.device.type, *dtype]
        out[f"infinity {p}"] = ([*inf, "--port", str(port), "--host", "127.0.0.1"], port, "/health")
        side = [sys.executable, "-m", "cli.main", "serve", "--device", ctx.device.type]
        side += ["--threads", str(ctx.threads), "--heads-dir", str(heads_dir), "--dtype", p]
        side += ["--head-dtype", common.server_head_dtype(ctx), "--log-level", "warning"]
        side += ["--backbone", ctx.backbone] if ctx.backbone else []
        out[f"sidetask {p}"] = ([*side, "--port", str(port + 1)], port + 1, "/readyz")
        port += 2
    if args.infinity_onnx is not None:
        onnx = [args.infinity, "v2", "--model-id", str(args.infinity_onnx)]
        onnx += ["--served-model-name", "minilm", "--engine", "optimum", "--device", "cpu"]
        out["infinity onnx"] = (
            [*onnx, "--port", str(port), "--host", "127.0.0.1"],
            port,
            "/health",
        )
    return out


def measure(ctx: common.BenchContext, args: argparse.Namespace) -> dict[str, Any]:
    from models.defaults import resolve_backbone

    if not args.infinity or not Path(args.infinity).exists():
        raise SystemExit("infinity-emb not found: pass --infinity PATH (see docs/benchmarks.md)")
    model_dir, _ = resolve_backbone(ctx.backbone)
    texts = load_pool(args.texts)
    precisions = [p for p in args.precisions.split(",") if p]
    if DEFAULTS in precisions and "float32" not in precisions:
        raise SystemExit("--precisions defaults compares with infinity's default: add float32")
    env = _env(str(ctx.threads))
    with ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        heads_dir = args.heads_dir or _random_heads(tmp / "heads", model_dir)
        heads = sorted(p.name for p in heads_dir.iterdir() if (p / "manifest.json").is_file())
        servers = commands(ctx, args, model_dir, heads_dir, precisions)
        for name, (cmd, port, ready) in servers.items():
            log = tmp / f"{name.replace(' ', '-')}.log"
            stack.enter_context(server(cmd, env, f"http://127.0.0.1:{port}{ready}", log))
        ports = {name: port for name, (_, port, _) in servers.items()}
        targets = _targets("minilm", heads, ports, precisions, shipped_head_names())
        rounds: dict[str, list[dict[str, Any]]] = {n: [] for n in targets}
        names = list(targets)
        for r in range(ctx.warmup + ctx.repeats):
            for name in names if r % 2 == 0 else names[::-1]:
                url, body = targets[name]
                got = asyncio.run(
                    _load(url, body, texts, args.concurrency, args.seconds, args.texts_per_request)
                )
                if r >= ctx.warmup:
                    rounds[name].append(got)
                print(f"round {r} {name}: {got['texts_per_s']:.1f} texts/s", flush=True)
        breakdown = {
            p: server_breakdown(f"http://127.0.0.1:{ports[f'sidetask {p}']}/metrics")
            for p in precisions
        }
    payload = _summarise(rounds, heads, args, model_dir, len(texts), precisions)
    payload["servers"] = {name: shlex_join(cmd) for name, (cmd, _, _) in servers.items()}
    payload["sidetask_head_dtype"] = common.server_head_dtype(ctx)
    payload["sidetask_server_breakdown"] = breakdown.get("float32") or next(
        iter(breakdown.values())
    )
    payload["sidetask_server_breakdown_by_precision"] = breakdown
    return payload


def shipped_head_names() -> list[str]:
    """The shipped heads the defaults target asks for (`sidetask serve` without --heads-dir
    loads them all): issue 20's three, as the other targets."""
    from heads.registry import head_folders
    from heads.shipped import PRETRAINED_HEADS

    return common.workload_heads([p.name for p in head_folders([PRETRAINED_HEADS])])


def shlex_join(cmd: Sequence[str]) -> str:
    import shlex

    return shlex.join(cmd)


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
    precisions: Sequence[str] = ("float32",),
) -> dict[str, Any]:
    targets: dict[str, Any] = {}
    rates = {n: [r["texts_per_s"] for r in rs] for n, rs in rounds.items()}
    for name, rs in rounds.items():
        lat = sorted(x for r in rs for x in r["latencies"])
        targets[name] = {
            "texts_per_s": common.summary(rates[name]),
            "requests_per_s": common.summary([r["requests_per_s"] for r in rs]),
            "latency_ms": {
                "p50": _percentile(lat, 0.50) * 1000,
                "p95": _percentile(lat, 0.95) * 1000,
                "p99": _percentile(lat, 0.99) * 1000,
                "mean": statistics.fmean(lat) * 1000 if lat else float("nan"),
            },
            "errors": sum(r["errors"] for r in rs),
        }
    peers = [n for n in rates if n.startswith("infinity")]
    rates["infinity best"] = [max(vals) for vals in zip(*(rates[n] for n in peers), strict=True)]
    ratios, to_best, met = {}, {}, {}
    for p in precisions:
        peer = peer_of(p)
        for side, goal in zip(SIDE, GOALS.get(p, (1.0, 1.0)), strict=True):
            name = label(side, p)
            if name in rates and peer in rates:
                ratios[name] = common.paired_ratio(rates, name, peer)
                to_best[name] = common.paired_ratio(rates, name, "infinity best")
                met[f"{name} >= {goal}x {peer}"] = ratios[name]["median"] >= goal
    per = args.texts_per_request
    return {
        "model": model_dir,
        "heads": heads,
        "precisions": list(precisions),
        "load": {
            "concurrency": args.concurrency,
            "seconds_per_round": args.seconds,
            "texts_per_request": per,
            "texts": f"{n_texts} sentences from {args.texts.name}, {per} per request, "
            "different in every request",
            "counting": "each answered request credited with the share of its lifetime "
            "inside the window (texts); wall clock",
        },
        "targets": targets,
        "ratios_to_peer": ratios,
        "ratios_to_peer_best": to_best,
        "targets_met": met,
    }


def plot(payload: dict[str, Any], ctx: common.BenchContext) -> None:
    fig, (ax_r, ax_l) = common.new_figure(2)
    names = list(payload["targets"])
    short = [
        n.replace("sidetask ", "sidetask\n").replace("infinity ", "infinity-emb\n") for n in names
    ]
    rates = [payload["targets"][n]["texts_per_s"] for n in names]
    med, err = common.median_and_error(rates)
    colors = ["C7" if n.startswith("infinity") else "C2" if "heads" in n else "C0" for n in names]
    ax_r.bar(range(len(names)), med, yerr=err, capsize=4, color=colors)
    ax_r.set_xticks(range(len(names)), short, fontsize=7, rotation=30)
    per = payload["load"].get("texts_per_request", 1)
    ax_r.set_ylabel(f"texts / s ({per} per request, wall clock)")
    p50 = [payload["targets"][n]["latency_ms"]["p50"] for n in names]
    p99 = [payload["targets"][n]["latency_ms"]["p99"] for n in names]
    x = range(len(names))
    ax_l.bar([i - 0.2 for i in x], p50, 0.4, label="p50")
    ax_l.bar([i + 0.2 for i in x], p99, 0.4, label="p99")
    ax_l.set_xticks(list(x), short, fontsize=7, rotation=30)
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
    ctx = dataclasses.replace(common.setup(args), clock="wall")  # HTTP load: wall time
    payload = measure(ctx, args)
    path = common.write_result(NAME, ctx, payload)
    plot(payload, ctx)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
