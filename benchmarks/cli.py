"""`sidetask bench <name> [flags]`: one subcommand per benchmark module.

Nothing is imported until a benchmark runs (``sidetask --help`` stays fast): each
subcommand hands its remaining arguments to ``benchmarks.<module>.main(argv)``, so
``sidetask bench overhead --help`` prints that benchmark's own flags.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
from typing import Any

BENCHMARKS: dict[str, tuple[str, str]] = {
    "overhead": ("benchmarks.overhead", "Q1: cost of 1/3/8/16 heads over the backbone alone."),
    "one_pass": ("benchmarks.one_pass", "Q2: one pass for 3 tasks vs 3 passes."),
    "memory": ("benchmarks.memory", "Q3: peak extra memory, streaming vs stacked states."),
    "early_exit": ("benchmarks.early_exit", "Q4: early exit and layer skipping."),
    "scaling": ("benchmarks.scaling", "Q5: 3-head overhead from MiniLM to RoBERTa-large."),
    "serve": ("benchmarks.serve", "Q6: the HTTP server under load vs the offline engine."),
    "peer": ("benchmarks.peer", "Q7: infinity-emb vs sidetask serving embeddings."),
    "head_dtype": ("benchmarks.head_dtype", "bfloat16 on CPU: answers vs float32, texts/s."),
    "dtype_gate": ("benchmarks.dtype_gate", "Fidelity gate of dtype auto: half vs float32."),
    "accumulator_dtype": (
        "benchmarks.accumulator_dtype",
        "bfloat16 vs float32 accumulator projection on CPU, per layer.",
    ),
    "accumulate": ("benchmarks.accumulate", "The fused accumulate kernel vs eager torch."),
    "scheduling": (
        "benchmarks.scheduling",
        "Q8: small requests beside a giant one, hang-ups, a lone request's overhead.",
    ),
    "step_size": ("benchmarks.step_size", "Q9: cost per window vs windows per micro-batch."),
    "padding": (
        "benchmarks.padding",
        "Padded-token fraction by batching policy; padded vs padding-free forward.",
    ),
    "compile": ("benchmarks.compile", "torch.compile of the backbone vs eager (--compile)."),
    "limit": (
        "benchmarks.limit",
        "Matmul peak -> FLOP-bound texts/s of the backbone; achieved / limit.",
    ),
    "overload": ("benchmarks.overload", "A real server offered 2x its capacity."),
    "soak": ("benchmarks.soak", "Varied load for a long time, server RSS sampled."),
}


def available() -> dict[str, tuple[str, str]]:
    """The benchmarks whose module exists in this checkout (found without importing it)."""
    return {
        name: entry
        for name, entry in BENCHMARKS.items()
        if importlib.util.find_spec(entry[0]) is not None
    }


def add_bench_parser(sub: Any) -> None:
    p = sub.add_parser(
        "bench",
        help="Run a benchmark and write JSON + PNG under benchmarks/results/.",
        description="Each benchmark takes its own flags: sidetask bench <name> --help.",
    )
    names = p.add_subparsers(dest="benchmark", required=True, metavar="<name>")
    for name, (module, summary) in available().items():
        # prefix_chars that no flag uses: every argument goes to the module untouched.
        b = names.add_parser(name, help=summary, add_help=False, prefix_chars="\0")
        b.add_argument("argv", nargs=argparse.REMAINDER)
        b.set_defaults(func=_run, bench_module=module)


def _run(args: argparse.Namespace) -> int:
    module = importlib.import_module(args.bench_module)
    return int(module.main(list(args.argv)) or 0)
