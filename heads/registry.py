"""The set of loaded heads: scanned from folders, swapped atomically as a whole."""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from heads.io import HeadLoadError, load_head
from heads.manifest import MANIFEST_FILE
from heads.task_head import TaskHead
from models.accumulator import AccumulatorPlan
from models.backbone import BackboneInfo

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LoadFailure:
    folder: str
    error: str


#: Task subsets whose fused plans a HeadSet keeps (the plan_cache_size setting).
DEFAULT_PLAN_CACHE = 64


@dataclass
class HeadSet:
    """An immutable-by-convention snapshot of heads; plans are cached per task subset.

    Each plan holds its own concatenated copy of the subset's projections, and clients choose
    the subsets (2^N - 1 of them with N heads): the cache keeps the ``max_plans`` most
    recently used and rebuilds an evicted one on demand (a few ms).
    """

    heads: dict[str, TaskHead]
    failures: list[LoadFailure] = field(default_factory=list)
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    dtype: torch.dtype = torch.float32  # the accumulator's projections
    max_plans: int = DEFAULT_PLAN_CACHE
    _plans: OrderedDict[frozenset[str], AccumulatorPlan] = field(
        default_factory=OrderedDict, repr=False
    )
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __post_init__(self) -> None:
        if self.max_plans < 1:
            raise ValueError(f"max_plans must be at least 1, got {self.max_plans}")

    @property
    def module_dtype(self) -> torch.dtype:
        """The dtype the heads' own layers compute in (float32 when there are none)."""
        return next((h.layers_dtype for h in self.heads.values()), torch.float32)

    @property
    def names(self) -> list[str]:
        return sorted(self.heads)

    def plan_for(self, names: Iterable[str]) -> AccumulatorPlan:
        key = frozenset(names)
        with self._lock:
            plan = self._plans.get(key)
            if plan is not None:
                self._plans.move_to_end(key)
                return plan
            tasks = [self.heads[n].projection() for n in sorted(key)]
            plan = AccumulatorPlan.build(tasks, self.device, self.dtype)
            self._plans[key] = plan
            while len(self._plans) > self.max_plans:
                self._plans.popitem(last=False)  # least recently used
            return plan

    @property
    def cached_plans(self) -> int:
        """How many task subsets have a plan built (at most ``max_plans``)."""
        return len(self._plans)


def head_folders(roots: Sequence[str | Path]) -> list[Path]:
    """Every folder directly under each root (or the root itself) holding a manifest."""
    found: list[Path] = []
    for root in roots:
        root = Path(root)
        if (root / MANIFEST_FILE).is_file():
            found.append(root)
        elif root.is_dir():
            found.extend(sorted(p for p in root.iterdir() if (p / MANIFEST_FILE).is_file()))
    return found


def load_head_set(
    roots: Sequence[str | Path],
    info: BackboneInfo,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
    skip_failures: bool = False,
    reserved: Iterable[str] = (),
    module_dtype: torch.dtype | None = None,
    max_plans: int = DEFAULT_PLAN_CACHE,
) -> HeadSet:
    """Load every head under ``roots``; a bad head raises unless ``skip_failures``.

    ``dtype`` is the accumulator weights' dtype; ``module_dtype`` (default: keep float32)
    the one the heads' own layers compute in.
    """
    heads: dict[str, TaskHead] = {}
    failures: list[LoadFailure] = []
    taken = set(reserved)
    for folder in head_folders(roots):
        try:
            head = load_head(folder, info, device)
            if head.name in taken or head.name in heads:
                raise HeadLoadError(f"{folder}: task name {head.name!r} is already taken")
        except HeadLoadError as exc:
            if not skip_failures:
                raise
            log.error("skipping head: %s", exc)
            failures.append(LoadFailure(str(folder), str(exc)))
            continue
        if module_dtype is not None:
            head.head.to(module_dtype)  # the mixer stays float32: its softmax weights need it
        heads[head.name] = head
    return HeadSet(
        heads=heads,
        failures=failures,
        device=torch.device(device),
        dtype=dtype,
        max_plans=max_plans,
    )
