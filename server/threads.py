"""How many torch threads a CPU server runs when ``threads`` is left empty.

torch's default is one OpenMP thread per core. An inference server also runs the event loop
(HTTP, validation, tokenising, JSON), the answer thread and, on a small box, its clients: an
OpenMP team spread over every core competes with them for each request. On the 2-core
development CPU a server with 1 torch thread answered a lone sentence in 6.4 ms against 7.9
ms with 2 (all four tasks 9.4 vs 13.3 ms) and served as much at saturation (328 vs 309
texts/s at c=32), although the model alone is faster with 2 (docs/server.md#torch-threads).
So ``sidetask serve`` leaves one core to the rest; an explicit ``--threads`` always wins,
and off the CPU torch's default stays (the GPU does the work).
"""

from __future__ import annotations

import os

from server.settings import Settings


def usable_cores() -> int:
    """The cores this process may run on (its affinity: a container's CPU set counts)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def serving_threads(settings: Settings, device_type: str, cores: int | None = None) -> int | None:
    """The ``threads`` a server should run with: the setting when given, else (on a CPU)
    the usable cores minus one, at least 1; None leaves torch's default."""
    if settings.threads is not None or device_type != "cpu":
        return settings.threads
    return max(1, (usable_cores() if cores is None else cores) - 1)
