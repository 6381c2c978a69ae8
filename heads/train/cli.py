"""`sidetask train` and `sidetask eval` argument parsers (filled in by the training module)."""

from __future__ import annotations

import argparse
from typing import Any


def add_train_parser(sub: Any) -> None:
    p = sub.add_parser("train", help="Train one head on a frozen backbone.")
    p.set_defaults(func=_not_yet)


def add_eval_parser(sub: Any) -> None:
    p = sub.add_parser("eval", help="Evaluate a trained head on a data file.")
    p.set_defaults(func=_not_yet)


def _not_yet(args: argparse.Namespace) -> int:
    raise SystemExit("not available yet")
