"""The head set's plan cache stays bounded whatever task subsets clients ask for."""

from __future__ import annotations

from itertools import combinations
from pathlib import Path

import pytest
from conftest import random_head
from pydantic import ValidationError

from engine.loading import load_heads
from heads.io import save_head
from heads.registry import HeadSet
from models.backbone import Backbone
from server.settings import Settings


def _heads(backbone: Backbone, max_plans: int) -> HeadSet:
    heads = {n: random_head(backbone.info, n, seed=i) for i, n in enumerate("abcd")}
    return HeadSet(heads=heads, max_plans=max_plans)


def test_the_least_recently_used_plan_is_dropped(tiny_roberta: Backbone) -> None:
    heads = _heads(tiny_roberta, max_plans=2)
    a = heads.plan_for(["a"])
    b = heads.plan_for(["b"])
    assert heads.plan_for(["a"]) is a  # a hit, and now the most recent
    heads.plan_for(["c"])  # evicts b, not a
    assert heads.cached_plans == 2
    assert heads.plan_for(["a"]) is a
    rebuilt = heads.plan_for(["b"])
    assert rebuilt is not b and rebuilt.total_k == b.total_k  # rebuilt on demand, same plan


def test_every_subset_asked_for_keeps_the_cache_bounded(tiny_roberta: Backbone) -> None:
    heads = _heads(tiny_roberta, max_plans=3)
    subsets = [c for r in range(1, 5) for c in combinations("abcd", r)]
    assert len(subsets) == 15
    for subset in subsets:
        plan = heads.plan_for(subset)
        assert [t.name for t in plan.tasks] == sorted(subset)
        assert heads.cached_plans <= 3


def test_the_cache_size_is_a_setting(
    tiny_roberta: Backbone, tiny_roberta_dir: Path, tmp_path: Path
) -> None:
    save_head(random_head(tiny_roberta.info, "a"), tmp_path / "a")
    settings = Settings(backbone=str(tiny_roberta_dir), heads_dir=[tmp_path], plan_cache_size=5)
    assert load_heads(settings, tiny_roberta).max_plans == 5
    assert Settings().plan_cache_size == 64
    with pytest.raises(ValidationError):
        Settings(plan_cache_size=0)
    with pytest.raises(ValueError, match="max_plans"):
        HeadSet(heads={}, max_plans=0)
