"""The inference engine: one backbone pass per micro-batch feeds every requested head.

Synchronous and free of HTTP. Three stages, so a server can run them on different threads:
:meth:`Engine.prepare` (tokenise, cut windows), :meth:`Engine.run_step` (one micro-batch of
windows, possibly from many requests) and :meth:`Engine.finish` (merge windows, answer).
``sidetask analyze`` and the offline benchmarks call :meth:`Engine.run_batch`, which chains
them for a list of requests.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import torch

from engine.dtype_choice import DtypeChoice
from engine.head_outputs import Commit, build_results, head_commits, main_commits
from engine.prepared import (
    AnalyzeRequest,
    AnalyzeResult,
    PreparedRequest,
    TextState,
    UnknownTaskError,
    WindowItem,
)
from engine.settings import EngineSettings
from heads.registry import HeadSet
from models.accumulator import StreamingAccumulator
from models.backbone import Backbone, GenerateOptions
from models.windows import Window, collate, encode_texts, make_windows, plan_batches

__all__ = [
    "AnalyzeRequest",
    "AnalyzeResult",
    "Engine",
    "EngineConfig",
    "PreparedRequest",
    "UnknownTaskError",
    "WindowItem",
]

StageObserver = Callable[[str, float], None]


@dataclass(frozen=True)
class EngineConfig:
    """The engine's knobs, resolved for one device; built from :class:`EngineSettings`."""

    max_batch_tokens: int
    max_batch_size: int
    window_overlap: int
    kernel: str
    generate_max_length: int
    generate_num_beams: int

    @classmethod
    def from_settings(
        cls,
        settings: EngineSettings | None = None,
        kernel: str | None = None,
        device: torch.device | None = None,
    ) -> EngineConfig:
        """``kernel``: the path the start-up check settled on (default: the setting)."""
        s = settings or EngineSettings()
        return cls(
            max_batch_tokens=s.batch_tokens(device),
            max_batch_size=s.max_batch_size,
            window_overlap=s.window_overlap,
            kernel=kernel or s.kernel,
            generate_max_length=s.generate_max_length,
            generate_num_beams=s.generate_num_beams,
        )


class Engine:
    """Owns the backbone and the current head set; heads swap atomically between requests."""

    def __init__(
        self,
        backbone: Backbone,
        heads: HeadSet,
        config: EngineConfig | None = None,
        observer: StageObserver | None = None,
        dtype_choice: DtypeChoice | None = None,
    ) -> None:
        self.backbone = backbone
        self.heads = heads
        self.config = config or EngineConfig.from_settings(device=backbone.device)
        self.observer = observer
        #: The backbone's dtype and why (dtype=auto's gate), for the start-up log and /tasks.
        self.dtype_choice = dtype_choice or DtypeChoice.as_loaded(backbone.dtype)

    @property
    def main_task(self) -> str:
        return self.backbone.info.main_task

    @property
    def available_tasks(self) -> list[str]:
        return [*self.heads.names, self.main_task]

    @property
    def kernel_path(self) -> str:
        from models.accumulator import resolve_kernel

        return resolve_kernel(self.config.kernel, self.backbone.device)

    def swap_heads(self, heads: HeadSet) -> None:
        """Replace the head set; requests prepared before keep the set they started with."""
        self.heads = heads

    def resolve_tasks(self, tasks: Sequence[str] | None, heads: HeadSet | None = None) -> list[str]:
        """Requested tasks, checked; none means every loaded head (not the main task)."""
        heads = heads or self.heads
        if tasks is None:
            return heads.names
        available = [*heads.names, self.main_task]
        unknown = [t for t in dict.fromkeys(tasks) if t not in available]
        if unknown:
            raise UnknownTaskError(unknown, available)
        return list(dict.fromkeys(tasks))

    def _observe(self, stage: str, started: float) -> float:
        now = time.perf_counter()
        if self.observer is not None:
            self.observer(stage, now - started)
        return now

    # ---- stage 1: tokenise and cut windows ------------------------------------------------
    def prepare(self, request: AnalyzeRequest) -> PreparedRequest:
        """Tokenise ``request`` against the current heads; raises UnknownTaskError."""
        t0 = time.perf_counter()
        heads = self.heads
        tasks = self.resolve_tasks(request.tasks, heads)
        main = self.main_task in tasks
        head_tasks = frozenset(t for t in tasks if t != self.main_task)
        encodings = encode_texts(self.backbone.tokenizer, request.texts)
        states = [
            TextState(head_tasks, main, enc, text)
            for text, enc in zip(request.texts, encodings, strict=True)
        ]
        prepared = PreparedRequest(request, heads, states)
        prepared.windows = [
            WindowItem(prepared, states[w.text_index], w) for w in self._windows(states)
        ]
        self._observe("tokenize", t0)
        return prepared

    def _windows(self, states: Sequence[TextState]) -> list[Window]:
        """All windows for texts that need heads; window 0 only for main-task-only texts."""
        info = self.backbone.info
        tok = self.backbone.tokenizer
        full = [i for i, s in enumerate(states) if s.tasks]
        first = [i for i, s in enumerate(states) if not s.tasks]
        out: list[Window] = []
        for group, first_only in ((full, False), (first, True)):
            if not group:
                continue
            ws = make_windows(
                [states[i].encoding for i in group],
                tok,
                info.max_length,
                self.config.window_overlap,
                first_only=first_only,
            )
            if len(group) == len(states):  # every text in this group: indices already right
                return ws
            out.extend(replace(w, text_index=group[w.text_index]) for w in ws)
        out.sort(key=lambda w: (w.text_index, w.start))
        return out

    # ---- stage 2: one micro-batch ---------------------------------------------------------
    def run_step(self, items: Sequence[WindowItem]) -> int:
        """Run one micro-batch of windows (all prepared against the same head set) and store
        their outputs in their texts' states; returns the layers the backbone ran.

        Nothing is stored unless the whole step succeeds, so a failed step can be retried
        with a subset of its windows.
        """
        t0 = time.perf_counter()
        heads = items[0].prepared.heads
        if any(it.prepared.heads is not heads for it in items):
            raise ValueError("a micro-batch mixes windows prepared against different head sets")
        backbone = self.backbone
        pad = backbone.tokenizer.pad_token_id or 0
        ids, mask = collate([it.window for it in items], pad, backbone.device)
        wanted = sorted({t for it in items for t in it.state.tasks})
        main = any(it.window.start == 0 and it.state.main for it in items)
        accumulator = None
        last_layer = None
        if wanted:
            plan = heads.plan_for(wanted)
            accumulator = StreamingAccumulator(
                plan, ids.shape[0], ids.shape[1], backbone.device, self.config.kernel
            )
            last_layer = plan.last_layer
        gen: GenerateOptions = {
            "max_length": self.config.generate_max_length,
            "num_beams": self.config.generate_num_beams,
        }
        out = backbone.forward(ids, mask, accumulator, last_layer, main, gen)
        t0 = self._observe("backbone", t0)
        commits: list[Commit] = []
        if main:
            decode = self._decode
            commits += main_commits(items, out, decode)
        if accumulator is not None:
            with torch.inference_mode():
                features = accumulator.features()
                for name in wanted:
                    head = heads.heads[name]
                    feats = features[name].to(head.layers_dtype)
                    commits += head_commits(head, feats, mask, items)
        for commit in commits:
            commit()
        for it in items:
            it.prepared.layers_run = max(it.prepared.layers_run, out.layers_run)
        self._observe("heads", t0)
        return out.layers_run

    def _decode(self, generated: torch.Tensor) -> str:
        return str(self.backbone.tokenizer.decode(generated, skip_special_tokens=True))

    # ---- stage 3: merge windows, answer ---------------------------------------------------
    def finish(self, prepared: PreparedRequest) -> AnalyzeResult:
        """Answers of a request whose windows have all run."""
        return self.finish_many([prepared])[0]

    def finish_many(self, prepared: Sequence[PreparedRequest]) -> list[AnalyzeResult]:
        """Answers of many finished requests, each head's built for all their texts at once."""
        t0 = time.perf_counter()
        results = build_results(prepared, self.main_task)
        self._observe("postprocess", t0)
        return results

    # ---- all three, in this thread ----------------------------------------------------------
    def run_batch(self, requests: Sequence[AnalyzeRequest]) -> list[AnalyzeResult | Exception]:
        """Answer many requests, windows packed into micro-batches by length.

        A request with an unknown task gets its own error; the others are answered.
        """
        outcomes: list[PreparedRequest | Exception] = []
        for req in requests:
            try:
                outcomes.append(self.prepare(req))
            except UnknownTaskError as exc:
                outcomes.append(exc)
        prepared = [o for o in outcomes if isinstance(o, PreparedRequest)]
        by_heads: dict[int, list[WindowItem]] = {}
        for p in prepared:
            for it in p.windows:
                by_heads.setdefault(id(p.heads), []).append(it)
        for group in by_heads.values():
            windows = [it.window for it in group]
            for batch in plan_batches(
                windows, self.config.max_batch_tokens, self.config.max_batch_size
            ):
                self.run_step([group[i] for i in batch])
        answered = iter(self.finish_many(prepared))
        return [o if isinstance(o, Exception) else next(answered) for o in outcomes]

    def analyze(self, texts: Sequence[str], tasks: Sequence[str] | None = None) -> AnalyzeResult:
        result = self.run_batch(
            [AnalyzeRequest(list(texts), None if tasks is None else list(tasks))]
        )
        if isinstance(result[0], Exception):
            raise result[0]
        return result[0]
