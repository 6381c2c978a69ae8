"""Client workloads for the HTTP benchmarks (serve, peer): varied texts, and how to count.

Two things made the earlier server figures misleading. ``hey`` sent one body over and over,
so every request had the same text (same length, tokenizer caches hot); here every request
carries different texts from a pool of real sentences, and ``hey`` runs as several
processes, each with its own body. And throughput was the number of requests completed
inside the window: with c clients answered in batches, that count moves in steps of a whole
batch (c=32 over 4.5 s: ~7 texts/s per step). Here each answered request is credited with
the fraction of its lifetime that lies inside the steady window, times its texts, which
measures the same rate without the steps (a closed loop keeps c requests in flight, so the
credited work per second is the throughput).
"""

from __future__ import annotations

import csv
import io
import json
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks.live_server import Outcome

SST2_DEV = Path(__file__).resolve().parents[2] / "shared" / "data" / "sst2" / "dev.tsv"
FALLBACK = (
    "Maria Schmidt flew from Berlin to Paris on Monday to meet the board of Acme Corp.",
    "The film was slow at first, but the last hour was moving and beautifully shot.",
    "Shares of Northwind fell sharply after the company cut its forecast for the year.",
    "John and his sister spent the summer hiking in the mountains near Lake Geneva.",
    "I would not recommend this hotel: the room was dirty and the staff were rude.",
    "The committee will publish its report on climate policy in Brussels next week.",
)


def sentence_pool(
    path: Path | None = SST2_DEV, min_words: int = 12, max_words: int = 31, limit: int = 512
) -> list[str]:
    """Real sentences of ``min_words``..``max_words`` words (the issue's 12-31), first
    ``limit``; the built-in sentences when the file is missing."""
    if path is None or not path.is_file():
        return list(FALLBACK)
    out = []
    for line in path.read_text().splitlines()[1:]:
        text = line.split("\t")[0].strip()
        if text and min_words <= len(text.split()) <= max_words:
            out.append(text)
        if len(out) >= limit:
            break
    return out or list(FALLBACK)


def request_texts(pool: Sequence[str], index: int, per_request: int) -> list[str]:
    """The texts of request ``index``: consecutive pool entries, so neighbours differ."""
    return [pool[(index * per_request + j) % len(pool)] for j in range(per_request)]


def credited_texts_per_s(
    outcomes: Sequence[Outcome], texts_per_request: int, seconds: float, ramp_up: float = 0.0
) -> float:
    """Texts per second in the steady window (``ramp_up``, ``seconds``], each answered
    request credited with the share of its [sent, answered] span inside the window."""
    lo, hi = ramp_up, seconds
    credit = 0.0
    for o in outcomes:
        if o.status != 200:
            continue
        start, end = o.sent, o.sent + o.latency
        inside = max(0.0, min(end, hi) - max(start, lo))
        credit += inside / o.latency if o.latency > 0 else float(lo < end <= hi)
    return credit * texts_per_request / (hi - lo)


def completed_texts_per_s(
    outcomes: Sequence[Outcome], texts_per_request: int, seconds: float, ramp_up: float = 0.0
) -> float:
    """Texts of the requests answered inside the window (the older, batch-stepped count)."""
    done = sum(1 for o in outcomes if o.status == 200 and ramp_up < o.sent + o.latency <= seconds)
    return done * texts_per_request / (seconds - ramp_up)


def hey_command(url: str, body_file: str, concurrency: int, seconds: float) -> list[str]:
    load = ["hey", "-z", f"{seconds}s", "-c", str(concurrency), "-m", "POST"]
    return [*load, "-T", "application/json", "-D", body_file, "-o", "csv", url]


def split_concurrency(concurrency: int, bodies: int) -> list[int]:
    """Clients per hey process: ``min(concurrency, bodies)`` processes, as even as can be."""
    n = max(1, min(concurrency, bodies))
    return [concurrency // n + (1 if i < concurrency % n else 0) for i in range(n)]


def hey_load(
    url: str, bodies: Sequence[dict[str, Any]], concurrency: int, seconds: float
) -> list[Outcome]:
    """Closed-loop load from several ``hey`` processes at once, each with its own body
    (hey sends one body per process); their outcomes pooled."""
    shares = split_concurrency(concurrency, len(bodies))
    with tempfile.TemporaryDirectory() as tmp:
        procs = []
        for i, c in enumerate(shares):
            body_file = Path(tmp) / f"body{i}.json"
            body_file.write_text(json.dumps(bodies[i]))
            cmd = hey_command(url, str(body_file), c, seconds)
            procs.append(subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True))
        outputs = [p.communicate(timeout=seconds + 120)[0] for p in procs]
    outcomes = []
    for out in outputs:
        for r in csv.DictReader(io.StringIO(out)):
            outcomes.append(
                Outcome(float(r["offset"]), int(r["status-code"]), float(r["response-time"]))
            )
    return outcomes
