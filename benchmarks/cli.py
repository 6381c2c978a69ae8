"""`sidetask bench` argument parser (filled in by the benchmarks)."""

from __future__ import annotations

import argparse
from typing import Any


def add_bench_parser(sub: Any) -> None:
    p = sub.add_parser("bench", help="Run a benchmark and write JSON under benchmarks/results/.")
    p.set_defaults(func=_not_yet)


def _not_yet(args: argparse.Namespace) -> int:
    raise SystemExit("not available yet")
