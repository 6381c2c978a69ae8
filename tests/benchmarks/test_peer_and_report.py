"""The peer benchmark's bookkeeping and the markdown report: what docs/benchmarks.md relies on."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from benchmarks import overhead, peer, report


def _rounds(rates: list[float]) -> list[dict[str, object]]:
    return [{"requests_per_s": r, "errors": 0, "latencies": [0.01, 0.02, 0.03]} for r in rates]


def test_peer_ratios_are_per_round_and_targets_follow_them() -> None:
    rounds = {
        "infinity embedding": _rounds([100.0, 50.0]),
        "sidetask embedding": _rounds([110.0, 55.0]),  # 1.1x the peer in both rounds
        "sidetask embedding + 3 heads": _rounds([80.0, 40.0]),  # 0.8x
    }
    args = peer.build_parser().parse_args(["--concurrency", "4", "--seconds", "1"])
    out = peer._summarise(rounds, ["a", "b", "c"], args, "model", 10)
    assert out["ratios_to_peer"]["sidetask embedding"]["median"] == pytest.approx(1.1)
    assert out["ratios_to_peer"]["sidetask embedding + 3 heads"]["max"] == pytest.approx(0.8)
    assert out["targets_met"] == {
        "sidetask embedding >= peer": True,
        "embedding + 3 heads >= 85% of peer": False,
    }
    assert out["targets"]["infinity embedding"]["latency_ms"]["p50"] == pytest.approx(20.0)


def test_peer_texts_are_the_sentences_of_a_tsv(tmp_path: Path) -> None:
    tsv = tmp_path / "dev.tsv"
    tsv.write_text("sentence\tlabel\na fine film .\t1\nawful .\t0\n")
    assert peer.load_texts(tsv) == ["a fine film .", "awful ."]
    assert peer.load_texts(tmp_path / "missing.tsv") == [peer.FALLBACK]


def test_peer_refuses_to_run_without_infinity(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="infinity-emb not found"):
        peer.main(["--infinity", str(tmp_path / "nope"), "--out", str(tmp_path)])


@pytest.mark.skipif(shutil.which("infinity_emb") is None, reason="infinity-emb not installed")
def test_peer_end_to_end(tmp_path: Path) -> None:  # pragma: no cover - needs infinity-emb
    argv = ["--seconds", "1", "--repeats", "1", "--warmup", "0", "--out", str(tmp_path)]
    assert peer.main(argv) == 0
    result = json.loads((tmp_path / "peer_cpu.json").read_text())
    assert set(result["targets"]) == {
        "infinity embedding",
        "sidetask embedding",
        "sidetask embedding + 3 heads",
    }


def test_report_renders_every_result_with_its_command(
    tiny_roberta_dir: Path, tmp_path: Path
) -> None:
    argv = ["--backbone", str(tiny_roberta_dir), "--out", str(tmp_path), "--repeats", "1"]
    assert overhead.main([*argv, "--warmup", "0", "--shapes", "1x8", "--heads", "1"]) == 0
    text = report.render(tmp_path, "cpu")
    assert "### overhead (cpu)" in text
    assert "| 1x8 |" in text
    assert "(1 thread(s))" in text  # machine and pinned threads are stated


def test_server_breakdown_reads_stage_times_from_prometheus_text(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    text = "\n".join(
        [
            "# TYPE sidetask_stage_duration_seconds histogram",
            'sidetask_stage_duration_seconds_sum{stage="backbone"} 3.5',
            'sidetask_stage_duration_seconds_count{stage="backbone"} 10',
            'sidetask_stage_duration_seconds_sum{stage="tokenize"} 0.5',
            'sidetask_stage_duration_seconds_count{stage="tokenize"} 10',
            "# TYPE sidetask_batch_size histogram",
            "sidetask_batch_size_sum 40",
            "sidetask_batch_size_count 10",
            "",
        ]
    )

    class Answer:
        def __init__(self) -> None:
            self.text = text

    monkeypatch.setattr("httpx.get", lambda url, timeout: Answer())
    out = peer.server_breakdown("http://x/metrics")
    assert out["batches"] == 10
    assert out["mean_requests_per_batch"] == 4
    assert out["stage backbone s"] == 3.5 and out["stage tokenize s"] == 0.5
