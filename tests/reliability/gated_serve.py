"""`sidetask serve` whose model load blocks until a gate file exists.

Lets a test send signals while the model is provably still loading: the load announces
itself by creating ``<gate>.loading``, then waits for ``<gate>``.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

import engine.loading as loading
from cli.main import main

GATE = Path(os.environ["SIDETASK_TEST_GATE"])
_build = loading.build_engine


def gated_build(settings: Any, observer: Any = None) -> Any:
    GATE.with_suffix(".loading").touch()
    while not GATE.exists():
        time.sleep(0.05)
    return _build(settings, observer)


loading.build_engine = gated_build

if __name__ == "__main__":
    sys.exit(main(["serve", *sys.argv[1:]]))
