"""benchmarks/padding.py: the batching policies it compares and a smoke run on tiny RoBERTa.

The policies are checked for what the padded-token figures rely on (every window runs once,
the caps hold, FIFO keeps arrival order), the smoke run for a complete JSON, never the speed.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path

import pytest

from benchmarks import padding

TOKENS, ROWS = 512, 64


@dataclass(frozen=True)
class Win:
    request: int
    index: int
    length: int


def _requests(seed: int, n: int = 12) -> list[list[Win]]:
    """Long-tailed requests: mostly 10-40 token windows, now and then 256-token ones."""
    rng = random.Random(seed)
    out = []
    for r in range(n):
        lengths = [rng.randint(10, 40) for _ in range(rng.randint(1, 16))]
        if r % 3 == 2:
            lengths += [256, 256, rng.randint(60, 256)]
        out.append([Win(r, i, n) for i, n in enumerate(lengths)])
    return out


def _policies(requests: list[list[Win]]) -> dict[str, list[list[Win]]]:
    return {
        "fifo": padding.fifo_batches(requests, 4, TOKENS, ROWS),
        "scheduler": padding.scheduler_batches(requests, 4, TOKENS, ROWS),
        "sorted": padding.sorted_batches(requests, TOKENS, ROWS),
    }


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_every_policy_runs_every_window_once_under_the_caps(seed: int) -> None:
    requests = _requests(seed)
    everything = sorted((w for r in requests for w in r), key=lambda w: (w.request, w.index))
    for name, batches in _policies(requests).items():
        ran = sorted((w for b in batches for w in b), key=lambda w: (w.request, w.index))
        assert ran == everything, name
        for b in batches:
            assert 0 < len(b) <= ROWS
            assert len(b) == 1 or len(b) * max(w.length for w in b) <= TOKENS, name


def test_fifo_keeps_arrival_order_and_the_closed_loop_admits_clients_in_turn() -> None:
    requests = _requests(3)
    ran = [w for b in padding.fifo_batches(requests, 4, TOKENS, ROWS) for w in b]
    assert [(w.request, w.index) for w in ran] == [
        (w.request, w.index) for r in requests for w in r
    ]


def test_grouping_pads_less_than_arrival_order_on_a_long_tailed_mix() -> None:
    stats = {k: padding.padding_stats(v) for k, v in _policies(_requests(0, 24)).items()}
    fifo, scheduler, bound = (stats[k]["padded_fraction"] for k in ("fifo", "scheduler", "sorted"))
    assert bound < scheduler < fifo


def test_padding_stats_weigh_tokens_and_steps() -> None:
    batches = [[Win(0, 0, 10), Win(0, 1, 30)], [Win(1, 0, 20)]]
    stats = padding.padding_stats(batches)
    assert stats["real_tokens"] == 60 and stats["padded_tokens"] == 80
    assert stats["padded_fraction"] == pytest.approx(0.25)
    assert stats["mean_step_padding"] == pytest.approx((1 - 40 / 60) / 2)
    assert stats["steps"] == 2 and stats["mean_rows"] == 1.5


def _data(root: Path) -> Path:
    text = "the film was slow but the last hour moved me and Anna loved Paris"
    (root / "sst2").mkdir(parents=True)
    (root / "imdb").mkdir()
    words = text.split()
    sentences = [" ".join(words[i % 3 : 12 + i % 4]) for i in range(40)]
    (root / "sst2" / "dev.tsv").write_text(
        "sentence\tlabel\n" + "".join(f"{s}\t1\n" for s in sentences)
    )
    reviews = [" ".join([text] * (4 + i % 3)) for i in range(8)]
    (root / "imdb" / "dev.tsv").write_text("text\tlabel\n" + "".join(f"{r}\t0\n" for r in reviews))
    return root


@pytest.mark.slow
def test_padding_benchmark_writes_every_policy_and_variant(
    tiny_roberta_dir: Path, tmp_path: Path
) -> None:
    argv = ["--backbone", str(tiny_roberta_dir), "--out", str(tmp_path / "out"), "--threads", "1"]
    argv += ["--data-dir", str(_data(tmp_path / "data")), "--requests", "3"]
    argv += ["--texts-per-request", "4", "--review-every", "4", "--repeats", "1", "--warmup", "0"]
    assert padding.main(argv) == 0
    result = json.loads((tmp_path / "out" / "padding_cpu.json").read_text())
    assert (tmp_path / "out" / "padding_cpu.png").stat().st_size > 0
    for probe in result["jagged_sdpa_probe"].values():
        assert probe["torch"] and probe["jagged_sdpa"]
    for name, r in result["results"].items():
        assert r["requests"] == 3, name
        assert set(r["padding"]) == {"fifo", "scheduler", "sorted"}
        for stats in r["padding"].values():
            assert 0 <= stats["padded_fraction"] < 1
        assert len({s["real_tokens"] for s in r["padding"].values()}) == 1  # the same windows
        assert r["unpadded_max_abs_diff_last_hidden"] < 1e-4
        assert set(r["ms"]) == {
            "fifo",
            "scheduler",
            "sorted",
            "fifo+unpadded",
            "scheduler+unpadded",
            "engine scheduler",
            "engine scheduler+unpadded",
        }
    assert result["results"]["long_tail"]["window_lengths"]["max"] > 20
