"""How the HTTP benchmarks load a server and count: varied bodies, no whole-batch steps."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks import loadgen
from benchmarks.live_server import Outcome


def _batched(clients: int, period: float, seconds: float) -> list[Outcome]:
    """A closed loop answered in batches: every ``period`` all ``clients`` requests return
    together and are sent again at once (what a batching server does to the clients)."""
    out = []
    t = 0.0
    while t < seconds + period:
        out += [Outcome(t, 200, period) for _ in range(clients)]
        t += period
    return out


def test_credited_rate_has_no_batch_steps_where_the_completion_count_has() -> None:
    # 32 clients, a batch every 0.7 s: the true rate is 32 / 0.7 = 45.7 texts/s
    outcomes = _batched(32, 0.7, 6.0)
    truth = 32 / 0.7
    ends = (5.55, 5.65)  # a batch returns at 5.6 s: the two windows straddle it
    credited = [loadgen.credited_texts_per_s(outcomes, 1, end, 1.5) for end in ends]
    completed = [loadgen.completed_texts_per_s(outcomes, 1, end, 1.5) for end in ends]
    assert all(c == pytest.approx(truth, rel=1e-9) for c in credited)
    assert completed[1] - completed[0] > 6  # one whole batch (32 / 4.1 s) apart


def test_texts_per_request_multiply_and_errors_do_not_count() -> None:
    ok = [Outcome(0.0, 200, 1.0), Outcome(1.0, 200, 1.0)]
    assert loadgen.credited_texts_per_s(ok, 16, 2.0) == pytest.approx(16.0)
    refused = [*ok, Outcome(0.5, 429, 0.01), Outcome(0.5, 0, 1.0)]
    assert loadgen.credited_texts_per_s(refused, 16, 2.0) == pytest.approx(16.0)
    # a request straddling the window's start counts for its share inside
    assert loadgen.credited_texts_per_s(ok, 1, 2.0, ramp_up=0.5) == pytest.approx(1.5 / 1.5)


def test_every_request_gets_different_texts() -> None:
    pool = [f"s{i}" for i in range(50)]
    first, second = loadgen.request_texts(pool, 0, 16), loadgen.request_texts(pool, 1, 16)
    assert len(first) == 16 and not set(first) & set(second)
    assert loadgen.request_texts(pool, 3, 1) == ["s3"]


def test_sentence_pool_keeps_the_issue_lengths(tmp_path: Path) -> None:
    tsv = tmp_path / "dev.tsv"
    rows = ["word " * 5, "word " * 12, "word " * 31, "word " * 40]
    tsv.write_text("sentence\tlabel\n" + "".join(f"{r.strip()}\t1\n" for r in rows))
    assert [len(t.split()) for t in loadgen.sentence_pool(tsv)] == [12, 31]
    assert loadgen.sentence_pool(tmp_path / "missing.tsv") == list(loadgen.FALLBACK)


def test_hey_processes_share_the_clients_and_each_has_its_body() -> None:
    assert loadgen.split_concurrency(32, 8) == [4] * 8
    assert loadgen.split_concurrency(10, 4) == [3, 3, 2, 2]
    assert loadgen.split_concurrency(1, 8) == [1]
    cmd = loadgen.hey_command("http://h/analyze", "/b.json", 4, 2.0)
    assert cmd[:5] == ["hey", "-z", "2.0s", "-c", "4"] and cmd[-1] == "http://h/analyze"
    assert cmd[cmd.index("-D") + 1] == "/b.json"
