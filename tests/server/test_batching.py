"""The batcher's promises, checked step by step with an engine the test holds at each step:
continuous batching, cancellation, answers built beside the backbone, failures isolated."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
from app_harness import assert_same_answers, engine_factory

from engine.core import AnalyzeRequest, AnalyzeResult, Engine, PreparedRequest, WindowItem
from models.backbone import Backbone
from server.batching import Batcher
from server.jobs import BatchConfig, Job
from server.settings import Settings

DEADLINE = 30.0  # generous: these tests wait on events, never on timings


class Stepper(Engine):
    """Each micro-batch waits until the test lets it run; every step is recorded."""

    gate: threading.Semaphore
    entered: threading.Semaphore
    steps: list[list[str]]
    finish_gate: threading.Event

    def run_step(self, items: Sequence[WindowItem]) -> int:
        self.steps.append(sorted({it.state.text for it in items}))
        self.entered.release()
        assert self.gate.acquire(timeout=DEADLINE), "the test never released this step"
        return super().run_step(items)

    def finish_many(self, prepared: Sequence[PreparedRequest]) -> list[AnalyzeResult]:
        assert self.finish_gate.wait(DEADLINE)
        return super().finish_many(prepared)


@pytest.fixture
def stepper(tiny_roberta: Backbone, tiny_roberta_dir: Path, heads_root: Path) -> Stepper:
    settings = Settings(backbone=str(tiny_roberta_dir), heads_dir=[heads_root])
    engine = engine_factory(tiny_roberta, Stepper)(settings)
    assert isinstance(engine, Stepper)
    engine.gate, engine.entered = threading.Semaphore(0), threading.Semaphore(0)
    engine.steps, engine.finish_gate = [], threading.Event()
    engine.finish_gate.set()
    return engine


def _entered(engine: Stepper) -> None:
    assert engine.entered.acquire(timeout=DEADLINE), "no micro-batch started"


def _run(engine: Stepper, body: Callable[[Batcher], Any], **config: Any) -> None:
    async def go() -> None:
        batcher = Batcher(
            engine,
            BatchConfig.from_settings(
                Settings(**{"max_wait_ms": 0.0, "max_batch_tokens": 16384, **config})
            ),
        )
        batcher.start()
        try:
            await body(batcher)
        finally:
            engine.finish_gate.set()
            for _ in range(100):
                engine.gate.release()
            batcher.stop()

    asyncio.run(go())


def _submit(batcher: Batcher, engine: Engine, *texts: str) -> Job:
    return batcher.submit(engine.prepare(AnalyzeRequest(list(texts))))


async def _wait(job: Job) -> AnalyzeResult:
    return await asyncio.wait_for(job.future, DEADLINE)


async def _poll(condition: Callable[[], bool]) -> None:
    for _ in range(int(DEADLINE / 0.01)):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not met before the deadline")


def test_requests_arriving_during_a_step_share_the_next_one(stepper: Stepper) -> None:
    async def body(batcher: Batcher) -> None:
        a = _submit(batcher, stepper, "Anna lives in Paris")
        await asyncio.to_thread(_entered, stepper)  # a lone request runs at once
        b = _submit(batcher, stepper, "Maria lives in Rome")
        c = _submit(batcher, stepper, "Pedro lives in Lima")
        stepper.gate.release()
        await asyncio.to_thread(_entered, stepper)
        stepper.gate.release()
        results = [await _wait(j) for j in (a, b, c)]
        assert stepper.steps == [
            ["Anna lives in Paris"],
            ["Maria lives in Rome", "Pedro lives in Lima"],
        ]
        stepper.gate.release(10)
        for job, result in zip((a, b, c), results, strict=True):
            alone = stepper.run_batch([job.prepared.request])[0]
            assert isinstance(alone, AnalyzeResult)
            assert_same_answers(result.results, alone.results)

    _run(stepper, body)


def test_a_small_request_waits_one_step_behind_a_giant_one(stepper: Stepper) -> None:
    giant_text = " ".join(f"word{i}" for i in range(400))  # many 64-token windows

    async def body(batcher: Batcher) -> None:
        giant = _submit(batcher, stepper, giant_text)
        await asyncio.to_thread(_entered, stepper)
        small = _submit(batcher, stepper, "Anna lives in Paris")
        stepper.gate.release()
        await asyncio.to_thread(_entered, stepper)
        assert "Anna lives in Paris" in stepper.steps[1]  # not behind the giant's windows
        stepper.gate.release(1000)
        await _wait(small)
        assert len((await _wait(giant)).results) == 1

    _run(stepper, body, max_batch_size=2)


def test_a_cancelled_request_frees_the_worker_after_the_running_step(stepper: Stepper) -> None:
    giant_text = " ".join(f"word{i}" for i in range(400))

    async def body(batcher: Batcher) -> None:
        giant = _submit(batcher, stepper, giant_text)
        windows = len(giant.prepared.windows)
        assert windows > 4
        await asyncio.to_thread(_entered, stepper)
        assert batcher.cancel(giant, reason="disconnect")
        stepper.gate.release()
        await _poll(lambda: batcher.idle)
        assert len(stepper.steps) == 1  # its other windows never ran
        after = _submit(batcher, stepper, "after")
        stepper.gate.release()
        assert len((await _wait(after)).results) == 1
        assert not giant.future.done()  # nobody waits for it: it is never answered

    _run(stepper, body, max_batch_size=2)


def test_answers_are_built_while_the_next_micro_batch_runs(stepper: Stepper) -> None:
    stepper.finish_gate.clear()

    async def body(batcher: Batcher) -> None:
        first = _submit(batcher, stepper, "Anna lives in Paris")
        await asyncio.to_thread(_entered, stepper)
        stepper.gate.release()
        await _poll(lambda: batcher._answering == 1)  # first's answer is being built
        second = _submit(batcher, stepper, "Maria lives in Rome")
        await asyncio.to_thread(_entered, stepper)  # the backbone is not held by it
        assert not first.future.done()
        stepper.finish_gate.set()
        stepper.gate.release()
        await _wait(first)
        await _wait(second)

    _run(stepper, body)


def test_requests_finished_together_are_answered_together_and_a_bad_one_fails_alone(
    stepper: Stepper,
) -> None:
    from server.jobs import BatchFailed

    answered: list[int] = []

    class BadAnswer(Stepper):
        def finish_many(self, prepared: Sequence[PreparedRequest]) -> list[AnalyzeResult]:
            assert self.finish_gate.wait(DEADLINE)
            answered.append(len(prepared))
            if any("BAD" in p.request.texts[0] for p in prepared):
                raise ValueError("injected: cannot build this answer")
            return super().finish_many(prepared)

    stepper.__class__ = BadAnswer
    stepper.finish_gate.clear()

    async def body(batcher: Batcher) -> None:
        first = _submit(batcher, stepper, "Anna lives in Paris")
        await asyncio.to_thread(_entered, stepper)
        bad = _submit(batcher, stepper, "BAD text")
        good = _submit(batcher, stepper, "good text")
        stepper.gate.release()  # first's step; its answer then waits at the finish gate
        await asyncio.to_thread(_entered, stepper)
        stepper.gate.release()  # bad and good share the next step and finish together
        await _poll(lambda: batcher._answering == 3)
        stepper.finish_gate.set()
        assert len((await _wait(first)).results) == 1
        with pytest.raises(BatchFailed):
            await _wait(bad)
        assert len((await _wait(good)).results) == 1
        assert answered == [1, 2, 1, 1]  # first; bad and good at once, then one by one
        assert batcher.alive  # the answer thread goes on

    _run(stepper, body)


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="thread names are read from /proc")
def test_the_worker_and_answer_threads_carry_their_names_in_the_os(stepper: Stepper) -> None:
    def names() -> set[str]:
        return {(t / "comm").read_text().strip() for t in Path("/proc/self/task").iterdir()}

    async def body(batcher: Batcher) -> None:
        await _poll(lambda: {"sidetask-worker", "sidetask-answer"} <= names())

    _run(stepper, body)
