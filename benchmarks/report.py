"""Markdown tables from the result JSON files, so docs/benchmarks.md never retypes a number.

python -m benchmarks.report --tag cpu > /tmp/tables.md
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from benchmarks.common import RESULTS_DIR
from engine.flags import EnvFlagParser, command_prefix, parse_with_env


def _mmm(s: dict[str, float], fmt: str = "{:.1f}") -> str:
    """median [min, max]"""
    return f"{fmt.format(s['median'])} [{fmt.format(s['min'])}, {fmt.format(s['max'])}]"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def _machine(d: dict[str, Any]) -> str:
    m = d["machine"]
    clock = d.get("settings", {}).get("clock", "wall")
    timed = {
        "memory": "not timed (bytes)",
        "peer": "wall time (HTTP load)",
    }.get(d["benchmark"].split("_", 1)[0], "process CPU time" if clock == "cpu" else "wall time")
    load = m.get("load_average_at_start") or []
    where = m.get("gpu") or f"{m['cpu']}, {m['usable_cores']} cores"
    return (
        f"_{where}; torch {m['torch']} ({m['torch_threads']} thread(s)), "
        f"load average at start {load[0]:.1f}; {timed}; `{d['command']}`_"
        if load
        else f"_{where}; `{d['command']}`_"
    )


def overhead(d: dict[str, Any]) -> str:
    counts = list(d["rows"][0]["heads"])
    header = ["batch x length", "backbone ms", *[f"{n} heads % (floor)" for n in counts]]
    rows = []
    for r in d["rows"]:
        cells = [
            f"{r['batch']}x{r['length']}",
            _mmm({k: v * 1000 for k, v in _stats(r["backbone_s"]).items()}),
        ]
        for n in counts:
            h = r["heads"][n]
            cells.append(f"{_mmm(h['overhead_pct'], '{:+.0f}')} ({h['flop_floor_pct']:.1f})")
        rows.append(cells)
    return _table(header, rows)


def one_pass(d: dict[str, Any]) -> str:
    header = ["batch x length", "one pass ms", "3 passes ms", "speed-up", "seq/s one / three"]
    rows = [
        [
            f"{r['batch']}x{r['length']}",
            _mmm({k: v * 1000 for k, v in _stats(r["one_pass_s"]).items()}),
            _mmm({k: v * 1000 for k, v in _stats(r["three_passes_s"]).items()}),
            _mmm(r["speedup"], "{:.2f}x"),
            f"{r['one_pass_seq_per_s']:.1f} / {r['three_passes_seq_per_s']:.1f}",
        ]
        for r in d["rows"]
    ]
    return _table(header, rows)


def memory(d: dict[str, Any]) -> str:
    header = [
        "sweep",
        "tasks",
        "batch x length",
        "streaming MiB",
        "stacked MiB",
        "ratio",
        "held s/st",
    ]
    rows = []
    for sweep, points in d["sweeps"].items():
        for r in points:
            held = r["held_by_construction_mib"]
            ratio = r["stacked_over_streaming"]
            rows.append(
                [
                    sweep,
                    str(r["tasks"]),
                    f"{r['batch']}x{r['length']}",
                    f"{r['streaming_extra_mib']['median']:.2f}",
                    f"{r['stacked_extra_mib']['median']:.1f}",
                    f"{ratio:.0f}x" if ratio else "-",
                    f"{held['streaming']:.2f} / {held['stacked']:.1f}",
                ]
            )
    return _table(header, rows)


def early_exit(d: dict[str, Any]) -> str:
    header = ["batch x length", "variant", "layers run", "states read", "time vs all layers"]
    rows = []
    for r in d["rows"]:
        for name, v in r["variants"].items():
            rows.append(
                [
                    f"{r['batch']}x{r['length']}",
                    name,
                    str(v["layers_run"]),
                    str(v["states_read"]),
                    _mmm(v["time_vs_all_layers"], "{:.2f}"),
                ]
            )
    return _table(header, rows)


def scaling(d: dict[str, Any]) -> str:
    header = [
        "backbone",
        "L x H",
        "batch x length",
        "backbone ms",
        "3 heads %",
        "accumulator only %",
        "FLOP floor %",
    ]
    rows = [
        [
            r["name"],
            f"{r['num_layers']} x {r['hidden_size']}",
            f"{r['batch']}x{r['length']}",
            f"{r['backbone_s']['median'] * 1000:.0f}",
            _mmm(r["overhead_pct"], "{:+.1f}"),
            _mmm(r["accumulate_only_overhead_pct"], "{:+.1f}"),
            f"{r['flop_floor_pct']:.2f}",
        ]
        for r in d["rows"]
    ]
    return _table(header, rows)


def peer(d: dict[str, Any]) -> str:
    """Texts/s per target (older files: requests/s of one text), ratios per round."""
    texts = all("texts_per_s" in t for t in d["targets"].values())
    best = d.get("ratios_to_peer_best", {})
    header = ["target", "texts/s" if texts else "req/s", "p50 ms", "p99 ms", "errors"]
    header += ["ratio to infinity-emb"] + (["ratio to infinity's best"] if best else [])
    rows = []
    for name, t in d["targets"].items():
        ratio = d["ratios_to_peer"].get(name)
        row = [
            name,
            _mmm(t["texts_per_s" if texts else "requests_per_s"]),
            f"{t['latency_ms']['p50']:.0f}",
            f"{t['latency_ms']['p99']:.0f}",
            str(t["errors"]),
            _mmm(ratio, "{:.2f}") if ratio else "-" if name.startswith("sidetask") else "1",
        ]
        if best:
            row.append(_mmm(best[name], "{:.2f}") if name in best else "-")
        rows.append(row)
    table = _table(header, rows)
    breakdown = d.get("sidetask_server_breakdown")
    if breakdown:
        parts = [f"{k}: {v:.1f}" for k, v in breakdown.items() if isinstance(v, float)]
        table += "\n\nsidetask worker, all rounds: " + ", ".join(parts)
    return table


def _stats(s: dict[str, Any]) -> dict[str, float]:
    return {k: s[k] for k in ("median", "min", "max")}


SECTIONS: dict[str, Callable[[dict[str, Any]], str]] = {
    "overhead": overhead,
    "one_pass": one_pass,
    "memory": memory,
    "early_exit": early_exit,
    "scaling": scaling,
    "peer": peer,
}


def render(results: Path, tag: str) -> str:
    parts = []
    for name, fn in SECTIONS.items():
        paths = [results / f"{name}_{tag}.json", *sorted(results.glob(f"{name}_*_{tag}.json"))]
        for path in paths:
            if path.is_file():
                parts.append(_section(path, fn, tag))
    return "\n".join(parts)


def _section(path: Path, fn: Callable[[dict[str, Any]], str], tag: str) -> str:
    data = json.loads(path.read_text())
    name = path.stem.removesuffix("_" + tag)
    return f"### {name} ({tag})\n\n{_machine(data)}\n\n{fn(data)}\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = EnvFlagParser(prog="python -m benchmarks.report", description=__doc__)
    parser.add_argument("--results", type=Path, default=RESULTS_DIR)
    parser.add_argument("--tag", default="cpu", help="Result suffix: cpu, cuda_float16, ...")
    args = parse_with_env(parser, argv, command_prefix("bench", "report"))
    print(render(args.results, args.tag))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
