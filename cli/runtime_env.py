"""Defaults for the native runtimes under torch, set before torch is first imported.

OpenMP's wait policy is read once, when torch loads its OpenMP library. Left to libgomp's
default, a thread that finished its share of an op spins until the next op, so every thread
wants a whole core all the time. With as many torch threads as cores, one other busy process
on the machine (a training job, a second replica, the load balancer) then stalls every
parallel region behind a descheduled thread: on the 2-core benchmark box one nice-19
training process made a lone request 20-40 times slower (docs/server.md#openmp-wait-policy).
``PASSIVE`` threads sleep instead. A value the user exported (``OMP_WAIT_POLICY=ACTIVE``)
wins.
"""

from __future__ import annotations

import os
import sys
from collections.abc import MutableMapping

RUNTIME_DEFAULTS: dict[str, str] = {"OMP_WAIT_POLICY": "PASSIVE"}


def apply_runtime_defaults(environ: MutableMapping[str, str] = os.environ) -> dict[str, str]:
    """Set each default the environment does not already have; returns those it set.

    Too late once torch is imported (its OpenMP runtime has read the environment): then
    nothing is set, so the environment keeps saying what the runtime actually uses.
    """
    if "torch" in sys.modules:
        return {}
    applied = {k: v for k, v in RUNTIME_DEFAULTS.items() if not environ.get(k)}
    environ.update(applied)
    return applied
