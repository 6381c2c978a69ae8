"""Issue 20.2: how much of each micro-batch is padding, and what the padding costs.

Two workloads, as requests of 16 texts, all four tasks (windows cut as the engine cuts them):

- **serve**: the serve benchmark's texts (benchmarks/loadgen.py: SST-2 dev sentences of
  12-31 words, consecutive pool entries, so every request differs);
- **long_tail**: SST-2 dev sentences of any length with, in every 16 texts, one IMDB dev
  review (cut into 256-token windows; its last window is partial): most windows are short,
  most tokens are in long windows.

Micro-batches are formed by a closed loop of ``--clients`` clients (a finished request is
replaced by the client's next one before the next step), under the server's default caps
(512 padded tokens and 64 windows per step on CPU), by three policies:

- **fifo** ("before"): windows in arrival order, no grouping, a step closes when the next
  window would pass a cap;
- **scheduler** ("after"): the real server/scheduler.py ``WindowScheduler``;
- **sorted** (a bound): every window of the workload sorted by length, packed by
  ``plan_batches`` (what ``Engine.run_batch`` does offline with all windows known).

The padded-token fraction is ``1 - real tokens / (rows x row length)`` over all steps (the
mean per step, what ``sidetask_batch_padding_ratio`` shows, is recorded too). Then the
backbone forward (main task on, no heads) over all of a policy's micro-batches is timed,
padded and with the padding-free pass (models/unpadded.py), rounds interleaved. A probe
records what torch's jagged nested-tensor SDPA does on this device.

    python -m benchmarks.padding --threads 1          # about 3 minutes on 2 cores
    sidetask bench padding --threads 1 --repeats 5
"""

from __future__ import annotations

import argparse
import collections
import functools
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import torch

from benchmarks import common, loadgen
from benchmarks.jagged_probe import probe_jagged_sdpa
from benchmarks.live_server import write_random_heads
from benchmarks.scheduling import reviews, sentences
from engine.flags import EnvFlagParser, command_prefix, parse_with_env

Batches = list[list[Any]]


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = EnvFlagParser(prog="sidetask bench padding", description=__doc__)
    common.add_common_arguments(p, repeats=5)
    p.add_argument("--requests", type=int, default=24, help="Requests per workload.")
    p.add_argument("--texts-per-request", type=int, default=16)
    p.add_argument("--clients", type=int, default=4, help="Closed-loop clients.")
    p.add_argument("--review-every", type=int, default=16, help="long_tail: 1 review per N texts.")
    p.add_argument("--data-dir", type=Path, default=Path("../shared/data"))
    p.add_argument(
        "--engine",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="Also time Engine.run_step (heads included) over the scheduler's steps.",
    )
    return parse_with_env(p, argv, command_prefix("bench", "padding"))


def workload_texts(name: str, args: argparse.Namespace) -> list[list[str]]:
    """The texts of each request of workload ``name``."""
    n, per = args.requests, args.texts_per_request
    if name == "serve":
        pool = loadgen.sentence_pool(args.data_dir / "sst2" / "dev.tsv")
        return [loadgen.request_texts(pool, i, per) for i in range(n)]
    short = [s for s in sentences(args.data_dir) if s]
    long = reviews(args.data_dir)
    stream: Iterator[str] = (
        long[(i // args.review_every) % len(long)]
        if i % args.review_every == args.review_every - 1
        else short[(i - i // args.review_every) % len(short)]
        for i in range(n * per)
    )
    flat = list(stream)
    return [flat[i * per : (i + 1) * per] for i in range(n)]


# ---- the policies: closed loop of clients, one step at a time --------------------------------
def closed_loop(
    requests: Sequence[Sequence[Any]],
    clients: int,
    add: Callable[[int, Sequence[Any]], None],
    step: Callable[[], tuple[list[Any], list[int]]],
) -> Batches:
    """Run ``step`` until every request is done; ``step`` returns (windows, finished
    requests). A finished request's client sends the next request at once."""
    sent = min(clients, len(requests))
    for r in range(sent):
        add(r, requests[r])
    done, batches = 0, []
    while done < len(requests):
        windows, finished = step()
        batches.append(windows)
        done += len(finished)
        for _ in finished:
            if sent < len(requests):
                add(sent, requests[sent])
                sent += 1
    return batches


def fifo_batches(
    requests: Sequence[Sequence[Any]], clients: int, tokens: int, rows: int
) -> Batches:
    """Windows in arrival order; a step closes when one more window would pass a cap."""
    queue: collections.deque[tuple[int, Any]] = collections.deque()
    left: dict[int, int] = {}

    def add(r: int, windows: Sequence[Any]) -> None:
        left[r] = len(windows)
        queue.extend((r, w) for w in windows)

    def step() -> tuple[list[Any], list[int]]:
        taken: list[tuple[int, Any]] = []
        longest = 0
        while queue and len(taken) < rows:
            longer = max(longest, queue[0][1].length)
            if taken and (len(taken) + 1) * longer > tokens:
                break
            taken.append(queue.popleft())
            longest = longer
        finished = []
        for r, _ in taken:
            left[r] -= 1
            if left[r] == 0:
                finished.append(r)
        return [w for _, w in taken], finished

    return closed_loop(requests, clients, add, step)


def scheduler_batches(
    requests: Sequence[Sequence[Any]], clients: int, tokens: int, rows: int
) -> Batches:
    """The server's WindowScheduler, fed as the batcher feeds it."""
    from server.scheduler import WindowScheduler

    scheduler: WindowScheduler[Any] = WindowScheduler(tokens, rows)

    def add(r: int, windows: Sequence[Any]) -> None:
        scheduler.add(r, 0, list(windows))

    def step() -> tuple[list[Any], list[int]]:
        s = scheduler.next_step()
        assert s is not None
        finished = scheduler.step_done(s)
        return s.items, [int(e.owner) for e in finished]  # type: ignore[call-overload]

    return closed_loop(requests, clients, add, step)


def sorted_batches(requests: Sequence[Sequence[Any]], tokens: int, rows: int) -> Batches:
    """All windows known at once, longest first (``plan_batches``): the bucketing bound."""
    from models.windows import plan_batches

    windows = [w for r in requests for w in r]
    return [[windows[i] for i in b] for b in plan_batches(windows, tokens, rows)]


def padding_stats(batches: Batches) -> dict[str, Any]:
    """Padded-token fraction (token-weighted) and its mean per step."""
    real = [sum(w.length for w in b) for b in batches]
    slots = [len(b) * max(w.length for w in b) for b in batches]
    per_step = [1 - r / s for r, s in zip(real, slots, strict=True)]
    return {
        "padded_fraction": 1 - sum(real) / sum(slots),
        "mean_step_padding": sum(per_step) / len(per_step),
        "steps": len(batches),
        "mean_rows": sum(len(b) for b in batches) / len(batches),
        "real_tokens": sum(real),
        "padded_tokens": sum(slots),
    }


# ---- timing -----------------------------------------------------------------------------------
def collated(backbone: Any, batches: Batches) -> list[tuple[torch.Tensor, torch.Tensor]]:
    from models.windows import collate

    pad = backbone.tokenizer.pad_token_id or 0
    return [collate([w.window for w in b], pad, backbone.device) for b in batches]


def run_all(
    backbone: Any, inputs: Sequence[tuple[torch.Tensor, torch.Tensor]], unpadded: bool
) -> None:
    """The backbone over every micro-batch of a policy: embedding on, no heads."""
    backbone.unpadded = unpadded
    for ids, mask in inputs:
        backbone.forward(ids, mask, main=True)


def max_difference(backbone: Any, inputs: Sequence[tuple[torch.Tensor, torch.Tensor]]) -> float:
    """Largest |padded - padding-free| last hidden state over the real tokens of ``inputs``."""
    worst = 0.0
    for ids, mask in inputs:
        states = []
        for unpadded in (False, True):
            backbone.unpadded = unpadded
            states.append(backbone.forward(ids, mask, main=False).last_hidden)
        real = mask.bool()
        worst = max(worst, float((states[0][real].float() - states[1][real].float()).abs().max()))
    return worst


def run_engine(engine: Any, batches: Batches, unpadded: bool) -> None:
    """``Engine.run_step`` over every micro-batch: backbone, accumulator and all heads."""
    engine.backbone.unpadded = unpadded
    for batch in batches:
        engine.run_step(batch)


def measure(
    name: str, args: argparse.Namespace, engine: Any, ctx: common.BenchContext
) -> dict[str, Any]:
    """Padding by policy, then each policy's steps timed, padded and padding-free."""
    from engine.core import AnalyzeRequest

    tasks = common.workload_tasks(engine)
    requests = [
        engine.prepare(AnalyzeRequest(texts, tasks)).windows for texts in workload_texts(name, args)
    ]
    tokens, rows = engine.config.max_batch_tokens, engine.config.max_batch_size
    policies = {
        "fifo": fifo_batches(requests, args.clients, tokens, rows),
        "scheduler": scheduler_batches(requests, args.clients, tokens, rows),
        "sorted": sorted_batches(requests, tokens, rows),
    }
    lengths = [w.length for r in requests for w in r]
    bb = engine.backbone
    inputs = {k: collated(bb, v) for k, v in policies.items()}
    variants: dict[str, Callable[[], None]] = {
        k: functools.partial(run_all, bb, x, False) for k, x in inputs.items()
    }
    for k in ("fifo", "scheduler"):
        variants[f"{k}+unpadded"] = functools.partial(run_all, bb, inputs[k], True)
    if args.engine:
        steps = policies["scheduler"]
        variants["engine scheduler"] = functools.partial(run_engine, engine, steps, False)
        variants["engine scheduler+unpadded"] = functools.partial(run_engine, engine, steps, True)
    times = common.time_interleaved(variants, ctx.repeats, ctx.warmup, ctx.device, ctx.clock)
    ms = {k: common.summary([1000 * t for t in v]) for k, v in times.items()}
    ratios = {k: common.paired_ratio(times, k, "scheduler") for k in times if "engine" not in k}
    if args.engine:
        ratios["engine scheduler+unpadded"] = common.paired_ratio(
            times, "engine scheduler+unpadded", "engine scheduler"
        )
    return {
        "requests": len(requests),
        "windows": len(lengths),
        "window_lengths": {
            "min": min(lengths),
            "median": sorted(lengths)[len(lengths) // 2],
            "max": max(lengths),
            "share_of_tokens_in_windows_over_128": sum(n for n in lengths if n > 128)
            / sum(lengths),
        },
        "caps": {"max_batch_tokens": tokens, "max_batch_size": rows, "clients": args.clients},
        "padding": {k: padding_stats(v) for k, v in policies.items()},
        "unpadded_max_abs_diff_last_hidden": max_difference(bb, inputs["scheduler"]),
        "ms": ms,
        "ratio_per_round": ratios,
        "raw": times.raw(),
    }


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    ctx = common.setup(args)
    from engine.loading import build_engine
    from engine.settings import EngineSettings

    values: dict[str, Any] = {"threads": args.threads, "dtype": args.dtype, "device": args.device}
    with tempfile.TemporaryDirectory() as tmp:
        if args.backbone:  # another backbone: random heads of the method's sizes
            heads = write_random_heads(args.backbone, Path(tmp) / "heads")
            values.update(backbone=args.backbone, heads_dir=[heads])
        engine = build_engine(EngineSettings(**values))
    bb = engine.backbone
    if not bb.use_unpadded():
        raise SystemExit(f"{bb.info.model_type}: the padding-free pass needs BERT-family layers")
    payload: dict[str, Any] = {
        "question": "#20.2: padded-token fraction of the micro-batches, fifo vs the scheduler "
        "vs sorted buckets, and the forward time padded vs padding-free",
        "backbone": bb.info.name,
        "workloads": {
            "serve": f"{args.texts_per_request} SST-2 dev sentences of 12-31 words per request "
            "(benchmarks/loadgen.py pool, every request different)",
            "long_tail": f"{args.texts_per_request} texts per request: SST-2 dev sentences of "
            f"any length, one IMDB dev review in every {args.review_every} texts (256-token "
            "windows, overlap 64)",
        },
        "policies": {
            "fifo": "before: arrival order, no grouping, step closes at a cap",
            "scheduler": "after: server/scheduler.py WindowScheduler, server default caps",
            "sorted": "bound: all windows sorted by length (plan_batches)",
            "+unpadded": "the same steps through models/unpadded.py (no pad token in any "
            "linear layer; attention per run of equal-length rows: no padded FLOPs)",
        },
        "timed": "ms per workload on the "
        f"{ctx.clock} clock: backbone.forward over every micro-batch of the policy (main task "
        "on, no heads); 'engine ...': Engine.run_step over the scheduler's steps (backbone, "
        "accumulator and all four tasks' heads). ratio_per_round: to 'scheduler' (padded), "
        "the engine pair to each other",
        "jagged_sdpa_probe": {
            d: probe_jagged_sdpa(ctx.device, common.DTYPES[d], ctx.clock)
            for d in ("float32", "bfloat16")
        },
    }
    payload["results"] = {w: measure(w, args, engine, ctx) for w in ("serve", "long_tail")}
    path = common.write_result("padding", ctx, payload)
    plot = plot_result(payload, ctx)
    print(f"wrote {path} and {plot}")
    for w, r in payload["results"].items():
        pad = ", ".join(f"{k} {v['padded_fraction']:.3f}" for k, v in r["padding"].items())
        ms = ", ".join(f"{k} {v['median']:.0f}" for k, v in r["ms"].items())
        print(f"{w}: padded fraction {pad}\n  forward ms: {ms}")
    return 0


def plot_result(payload: dict[str, Any], ctx: common.BenchContext) -> Path:
    fig, (left, right) = common.new_figure(2)
    results = payload["results"]
    names = list(results)
    policies = ["fifo", "scheduler", "sorted"]
    width = 0.8 / len(policies)
    for j, p in enumerate(policies):
        xs = [i + j * width for i in range(len(names))]
        left.bar(xs, [results[w]["padding"][p]["padded_fraction"] for w in names], width, label=p)
    left.set_xticks([i + width for i in range(len(names))], names)
    left.set_ylabel("padded-token fraction")
    left.legend(fontsize=7)
    variants = list(next(iter(results.values()))["ms"])
    width = 0.8 / len(variants)
    for j, v in enumerate(variants):
        stats = [results[w]["ms"][v] for w in names]
        med, err = common.median_and_error(stats)
        xs = [i + j * width for i in range(len(names))]
        right.bar(xs, med, width, yerr=err, label=v)
    right.set_xticks([i + 0.4 - width / 2 for i in range(len(names))], names)
    right.set_ylabel(f"ms per workload ({ctx.clock} clock)")
    right.legend(fontsize=6)
    path = common.plot_path("padding", ctx)
    common.save_figure(
        fig, path, f"padding: policies and the padding-free pass, {ctx.threads} thread(s)"
    )
    return path


if __name__ == "__main__":
    raise SystemExit(main())
