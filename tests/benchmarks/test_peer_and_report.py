"""The peer benchmark's bookkeeping and the markdown report: what docs/benchmarks.md relies on."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from benchmarks import overhead, peer, report


def _rounds(rates: list[float]) -> list[dict[str, object]]:
    return [
        {"texts_per_s": r, "requests_per_s": r, "errors": 0, "latencies": [0.01, 0.02, 0.03]}
        for r in rates
    ]


def test_peer_ratios_are_per_round_and_targets_follow_them() -> None:
    rounds = {
        "infinity embedding": _rounds([100.0, 50.0]),
        "sidetask embedding": _rounds([140.0, 70.0]),  # 1.4x the peer in both rounds
        "sidetask embedding + 3 heads": _rounds([110.0, 55.0]),  # 1.1x
        "infinity embedding (bfloat16)": _rounds([200.0, 40.0]),
        "sidetask embedding (bfloat16)": _rounds([300.0, 60.0]),  # 1.5x
        "sidetask embedding + 3 heads (bfloat16)": _rounds([260.0, 52.0]),  # 1.3x
    }
    args = peer.build_parser().parse_args(["--concurrency", "4", "--seconds", "1"])
    out = peer._summarise(rounds, ["a", "b", "c"], args, "model", 10, ["float32", "bfloat16"])
    assert out["ratios_to_peer"]["sidetask embedding"]["median"] == pytest.approx(1.4)
    assert out["ratios_to_peer"]["sidetask embedding + 3 heads"]["max"] == pytest.approx(1.1)
    assert out["ratios_to_peer"]["sidetask embedding (bfloat16)"]["min"] == pytest.approx(1.5)
    # infinity's best per round: 200 (bf16) in round 1, 50 (fp32) in round 2
    best = out["ratios_to_peer_best"]["sidetask embedding"]
    assert best["values"] == pytest.approx([140 / 200, 70 / 50])
    assert out["targets_met"] == {
        "sidetask embedding >= 1.3x infinity embedding": True,
        "sidetask embedding + 3 heads >= 1.15x infinity embedding": False,
        "sidetask embedding (bfloat16) >= 1.4x infinity embedding (bfloat16)": True,
        "sidetask embedding + 3 heads (bfloat16) >= 1.2x infinity embedding (bfloat16)": True,
    }
    assert out["targets"]["infinity embedding"]["latency_ms"]["p50"] == pytest.approx(20.0)
    assert out["load"]["texts_per_request"] == 1


def test_peer_runs_both_servers_at_each_precision_and_infinity_onnx(tmp_path: Path) -> None:
    argv = ["--infinity", "/bin/inf", "--precisions", "float32,bfloat16"]
    args = peer.build_parser().parse_args([*argv, "--infinity-onnx", str(tmp_path)])
    ctx = peer.common.setup(args)
    servers = peer.commands(ctx, args, "/model", tmp_path / "heads", ["float32", "bfloat16"])
    assert set(servers) == {
        "infinity float32",
        "sidetask float32",
        "infinity bfloat16",
        "sidetask bfloat16",
        "infinity onnx",
    }
    assert "--dtype" not in servers["infinity float32"][0]  # its default
    side = servers["sidetask float32"][0]  # pinned: sidetask's auto may resolve to bfloat16
    assert side[side.index("--dtype") + 1] == "float32"
    for name in ("infinity bfloat16", "sidetask bfloat16"):
        cmd = servers[name][0]
        assert cmd[cmd.index("--dtype") + 1] == "bfloat16"
    onnx = servers["infinity onnx"][0]
    assert onnx[onnx.index("--engine") + 1] == "optimum"
    assert onnx[onnx.index("--model-id") + 1] == str(tmp_path)
    assert len({port for _, port, _ in servers.values()}) == 5
    targets = peer._targets("m", ["h"], {k: v[1] for k, v in servers.items()}, ["float32"])
    _, body = targets["sidetask embedding + 3 heads"]
    assert body(["x", "y"]) == {"texts": ["x", "y"], "tasks": ["embedding", "h"]}
    assert "infinity embedding (onnx)" in targets


def test_peer_defaults_run_sidetask_without_flags_against_infinitys_default(
    tmp_path: Path,
) -> None:
    args = peer.build_parser().parse_args(["--infinity", "/bin/inf"])
    ctx = peer.common.setup(args)
    servers = peer.commands(ctx, args, "/model", tmp_path / "heads", ["float32", "defaults"])
    assert set(servers) == {"infinity float32", "sidetask float32", "sidetask defaults"}
    side = servers["sidetask defaults"][0]
    for flag in ("--dtype", "--heads-dir", "--head-dtype"):
        assert flag not in side  # dtype auto and the shipped heads, as `sidetask serve` starts
    ports = {k: v[1] for k, v in servers.items()}
    targets = peer._targets("m", ["h"], ports, ["float32", "defaults"], ["cola", "ner"])
    url, body = targets["sidetask embedding + 3 heads (defaults)"]
    assert url.endswith(f":{ports['sidetask defaults']}/analyze")
    assert body(["x"]) == {"texts": ["x"], "tasks": ["embedding", "cola", "ner"]}
    rounds = {
        "infinity embedding": _rounds([100.0, 100.0]),
        "sidetask embedding (defaults)": _rounds([150.0, 140.0]),
        "sidetask embedding + 3 heads (defaults)": _rounds([110.0, 105.0]),
    }
    out = peer._summarise(rounds, ["h"], args, "model", 10, ["defaults"])
    assert out["targets_met"] == {
        "sidetask embedding (defaults) >= 1.3x infinity embedding": True,
        "sidetask embedding + 3 heads (defaults) >= 1.15x infinity embedding": False,
    }
    with pytest.raises(SystemExit, match="add float32"):
        argv = ["--infinity", "/bin/true", "--precisions", "defaults"]
        peer.measure(ctx, peer.build_parser().parse_args(argv))


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
        peer.label(name, p) for p in ("float32", "bfloat16") for name in (peer.PEER, *peer.SIDE)
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


def test_report_renders_old_and_new_peer_files() -> None:
    from benchmarks.common import RESULTS_DIR

    old = json.loads((RESULTS_DIR / "peer_cpu_heads-float32.json").read_text())  # before #20
    assert "| req/s |" in report.peer(old)
    rounds = {
        "infinity embedding": _rounds([100.0]),
        "sidetask embedding": _rounds([140.0]),
        "sidetask embedding + 3 heads": _rounds([110.0]),
    }
    args = peer.build_parser().parse_args([])
    new = peer._summarise(rounds, ["a"], args, "model", 10, ["float32"])
    text = report.peer(new)
    assert "| texts/s |" in text and "ratio to infinity's best" in text
    assert "| sidetask embedding | 140.0 [140.0, 140.0] |" in text


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


def test_peer_defaults_ask_the_shipped_heads_for_issue_20s_three() -> None:
    assert peer.shipped_head_names() == ["cola", "ner", "sentiment"]
