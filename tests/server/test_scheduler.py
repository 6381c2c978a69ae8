"""The scheduling policy: which windows share a micro-batch, and who goes next."""

from __future__ import annotations

import random
from dataclasses import dataclass

from server.scheduler import WindowScheduler, slack


@dataclass(frozen=True)
class W:
    length: int
    owner: str = ""


def _owners(step: object) -> list[object]:
    return [entry.owner for entry, _ in step.parts]  # type: ignore[attr-defined]


def test_a_small_request_arriving_during_a_giant_one_runs_in_the_next_step() -> None:
    s: WindowScheduler[W] = WindowScheduler(max_tokens=4 * 256, max_rows=64)
    s.add("giant", 0, [W(256) for _ in range(100)])
    first = s.next_step()
    assert first is not None and _owners(first) == ["giant"] and first.rows == 4
    s.add("small", 0, [W(12)])  # arrives while the giant's step runs
    s.step_done(first)
    second = s.next_step()
    assert second is not None and _owners(second) == ["small"]
    assert s.step_done(second)[0].owner == "small"  # answered as soon as its window ran


def test_a_giant_request_is_not_starved_by_a_stream_of_small_ones() -> None:
    s: WindowScheduler[W] = WindowScheduler(max_tokens=4 * 256, max_rows=64)
    s.add("giant", 0, [W(256) for _ in range(100)])
    giant_steps = 0
    for i in range(20):
        s.add(f"small{i}", 0, [W(10)])  # a new small request during every step
        step = s.next_step()
        assert step is not None
        giant_steps += "giant" in _owners(step)
        s.step_done(step)
    assert giant_steps >= 9  # every other step, although small requests never stop coming


def test_similar_lengths_share_a_step_and_padding_stays_bounded() -> None:
    rng = random.Random(0)
    s: WindowScheduler[W] = WindowScheduler(max_tokens=16384, max_rows=64)
    for r in range(30):
        s.add(
            r, 0, [W(rng.choice([8, 20, 31, 64, 128, 200, 256])) for _ in range(rng.randint(1, 9))]
        )
    total = sum(e.pending for e in s.entries)
    seen = 0
    while (step := s.next_step()) is not None:
        longest = max(w.length for w in step.items)
        assert longest == step.row_length
        assert all(longest - w.length <= slack(longest) for w in step.items)
        assert step.rows * step.row_length <= 16384 and step.rows <= 64
        seen += step.rows
        s.step_done(step)
    assert seen == total and len(s) == 0


def test_short_texts_beyond_the_token_cap_fill_a_step_with_little_padding() -> None:
    # Saturation with one sentence per request: more texts queued than one 512-token step
    # holds. Rows as long as the longest reachable text (49) would carry 10 rows, half of
    # them padding; the anchor's own length range carries 18 nearly full rows.
    s: WindowScheduler[W] = WindowScheduler(max_tokens=512, max_rows=64)
    s.add("anchor", 0, [W(26)])
    for i in range(40):
        s.add(i, 0, [W(20 + i % 8)])
    for i in range(4):
        s.add(f"long{i}", 0, [W(49)])
    step = s.next_step()
    assert step is not None and _owners(step)[0] == "anchor"
    real = sum(w.length for w in step.items)
    assert step.rows * step.row_length <= 512
    assert real >= 400 and step.padding_ratio <= 0.1
    assert not any(str(owner).startswith("long") for owner in _owners(step))


def test_requests_prepared_against_other_heads_never_share_a_step() -> None:
    s: WindowScheduler[W] = WindowScheduler(max_tokens=16384, max_rows=64)
    s.add("old", "heads-v1", [W(10)])
    s.add("new", "heads-v2", [W(10)])
    first, _ = s.next_step(), None
    assert first is not None and _owners(first) == ["old"]
    s.step_done(first)
    second = s.next_step()
    assert second is not None and _owners(second) == ["new"]


def test_a_removed_request_has_its_pending_windows_dropped() -> None:
    s: WindowScheduler[W] = WindowScheduler(max_tokens=2 * 256, max_rows=64)
    giant = s.add("giant", 0, [W(256) for _ in range(10)])
    step = s.next_step()
    assert step is not None
    assert s.remove(giant) == 8  # the two running windows finish, the rest never run
    assert s.step_done(step) == [] and s.next_step() is None and len(s) == 0
