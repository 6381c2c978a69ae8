"""The inference engine: one backbone pass per micro-batch feeds every requested head.

Synchronous and free of HTTP: the server's batcher calls :meth:`Engine.run_batch` from its
worker thread, ``sidetask analyze`` calls :meth:`Engine.analyze` directly.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import torch

from heads.casing import token_case_ids, window_case_ids
from heads.modules import SequenceClassificationHead
from heads.postprocess import classification_answer, decode_entities, words_from_tokens
from heads.registry import HeadSet
from heads.task_head import TaskHead
from models.accumulator import StreamingAccumulator
from models.backbone import Backbone
from models.windows import TextEncoding, Window, collate, encode_texts, make_windows, plan_batches

StageObserver = Callable[[str, float], None]


class UnknownTaskError(ValueError):
    """A request named a task this server does not have."""

    def __init__(self, unknown: Sequence[str], available: Sequence[str]) -> None:
        self.unknown = list(unknown)
        self.available = list(available)
        super().__init__(
            f"unknown task(s) {', '.join(map(repr, unknown))}; available: {', '.join(available)}"
        )


@dataclass(frozen=True)
class EngineConfig:
    """Knobs of the engine (the server's Settings fill them)."""

    max_batch_tokens: int = 16384
    max_batch_size: int = 64
    window_overlap: int = 64
    kernel: str = "auto"
    generate_max_length: int = 64
    generate_num_beams: int = 1


@dataclass(frozen=True)
class AnalyzeRequest:
    texts: list[str]
    tasks: list[str] | None = None


@dataclass
class AnalyzeResult:
    results: list[dict[str, Any]]
    tokens: int
    layers_run: int


@dataclass
class _TextState:
    """Per-text partial answers gathered across micro-batches."""

    request: int
    tasks: frozenset[str]
    main: bool
    encoding: TextEncoding
    pooled: dict[str, tuple[torch.Tensor, torch.Tensor]] = field(default_factory=dict)
    token_probs: dict[str, torch.Tensor] = field(default_factory=dict)
    main_output: Any = None
    text: str = ""  # the original text: entity spans and casing classes are read from it


class Engine:
    """Owns the backbone and the current head set; heads swap atomically between batches."""

    def __init__(
        self,
        backbone: Backbone,
        heads: HeadSet,
        config: EngineConfig | None = None,
        observer: StageObserver | None = None,
    ) -> None:
        self.backbone = backbone
        self.heads = heads
        self.config = config or EngineConfig()
        self.observer = observer

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
        """Replace the head set; a batch in flight keeps the set it started with."""
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

    def analyze(self, texts: Sequence[str], tasks: Sequence[str] | None = None) -> AnalyzeResult:
        result = self.run_batch(
            [AnalyzeRequest(list(texts), None if tasks is None else list(tasks))]
        )
        if isinstance(result[0], Exception):
            raise result[0]
        return result[0]

    def _observe(self, stage: str, started: float) -> float:
        now = time.perf_counter()
        if self.observer is not None:
            self.observer(stage, now - started)
        return now

    def run_batch(self, requests: Sequence[AnalyzeRequest]) -> list[AnalyzeResult | Exception]:
        """Answer many requests with one backbone pass per micro-batch of windows.

        A request with an unknown task gets its own error; the others are answered.
        """
        heads = self.heads
        outcomes: list[AnalyzeResult | Exception | None] = [None] * len(requests)
        states: list[_TextState] = []
        t0 = time.perf_counter()
        encodings_all = encode_texts(
            self.backbone.tokenizer, [t for r in requests for t in r.texts]
        )
        cursor = 0
        for ri, req in enumerate(requests):
            encodings = encodings_all[cursor : cursor + len(req.texts)]
            cursor += len(req.texts)
            try:
                tasks = self.resolve_tasks(req.tasks, heads)
            except UnknownTaskError as exc:
                outcomes[ri] = exc
                continue
            main = self.main_task in tasks
            head_tasks = frozenset(t for t in tasks if t != self.main_task)
            for text, enc in zip(req.texts, encodings, strict=True):
                states.append(_TextState(ri, head_tasks, main, enc, text=text))
        windows = self._windows(states)
        t0 = self._observe("tokenize", t0)

        layers_by_request = [0] * len(requests)
        for batch in plan_batches(
            windows, self.config.max_batch_tokens, self.config.max_batch_size
        ):
            layers = self._run_micro_batch([windows[i] for i in batch], states, heads)
            for i in batch:
                r = states[windows[i].text_index].request
                layers_by_request[r] = max(layers_by_request[r], layers)

        t0 = time.perf_counter()
        classified = self._classify(states, heads)
        answers = [self._answer(st, heads, classified[i]) for i, st in enumerate(states)]
        self._observe("postprocess", t0)

        tokens_by_request = [0] * len(requests)
        for w in windows:
            tokens_by_request[states[w.text_index].request] += w.length
        grouped: list[list[dict[str, Any]]] = [[] for _ in requests]
        for st, answer in zip(states, answers, strict=True):
            grouped[st.request].append(answer)
        for ri in range(len(requests)):
            if outcomes[ri] is None:
                outcomes[ri] = AnalyzeResult(
                    grouped[ri], tokens_by_request[ri], layers_by_request[ri]
                )
        return [o for o in outcomes if o is not None]

    def _windows(self, states: Sequence[_TextState]) -> list[Window]:
        """All windows for texts that need heads; window 0 only for main-task-only texts."""
        info = self.backbone.info
        tok = self.backbone.tokenizer
        full = [i for i, s in enumerate(states) if s.tasks]
        first = [i for i, s in enumerate(states) if not s.tasks]
        out: list[Window] = []
        for group, first_only in ((full, False), (first, True)):
            ws = make_windows(
                [states[i].encoding for i in group],
                tok,
                info.max_length,
                self.config.window_overlap,
                first_only=first_only,
            )
            out.extend(replace(w, text_index=group[w.text_index]) for w in ws)
        return out

    def _run_micro_batch(
        self, windows: Sequence[Window], states: Sequence[_TextState], heads: HeadSet
    ) -> int:
        t0 = time.perf_counter()
        backbone = self.backbone
        pad = backbone.tokenizer.pad_token_id or 0
        ids, mask = collate(windows, pad, backbone.device)
        wanted = sorted({t for w in windows for t in states[w.text_index].tasks})
        main = any(w.start == 0 and states[w.text_index].main for w in windows)
        accumulator = None
        last_layer = None
        if wanted:
            plan = heads.plan_for(wanted)
            accumulator = StreamingAccumulator(
                plan, ids.shape[0], ids.shape[1], backbone.device, self.config.kernel
            )
            last_layer = plan.last_layer
        gen = {
            "max_length": self.config.generate_max_length,
            "num_beams": self.config.generate_num_beams,
        }
        out = backbone.forward(ids, mask, accumulator, last_layer, main, gen)
        t0 = self._observe("backbone", t0)
        if main:
            self._collect_main(windows, states, out)
        if accumulator is not None:
            with torch.inference_mode():
                features = accumulator.features()
                for name in wanted:
                    rows = [i for i, w in enumerate(windows) if name in states[w.text_index].tasks]
                    head = heads.heads[name]
                    self._collect_head(
                        head, features[name].to(head.layers_dtype), mask, windows, rows, states
                    )
        self._observe("heads", t0)
        return out.layers_run

    def _collect_main(
        self, windows: Sequence[Window], states: Sequence[_TextState], out: Any
    ) -> None:
        for row, w in enumerate(windows):
            st = states[w.text_index]
            if w.start != 0 or not st.main:
                continue
            if out.embedding is not None:
                st.main_output = out.embedding[row].float().cpu().tolist()
            elif out.generated is not None:
                st.main_output = self.backbone.tokenizer.decode(
                    out.generated[row], skip_special_tokens=True
                )

    def _collect_head(
        self,
        head: TaskHead,
        features: torch.Tensor,
        mask: torch.Tensor,
        windows: Sequence[Window],
        rows: list[int],
        states: Sequence[_TextState],
    ) -> None:
        index = torch.tensor(rows, device=features.device)
        f, m = features.index_select(0, index), mask.index_select(0, index)
        if head.kind == "sequence":
            assert isinstance(head.head, SequenceClassificationHead)
            sums, counts = head.head.pooled_sums(f, m)
            for j, row in enumerate(rows):
                st = states[windows[row].text_index]
                prev = st.pooled.get(head.name)
                s, c = sums[j].float().cpu(), counts[j].float().cpu()
                st.pooled[head.name] = (s, c) if prev is None else head.head.combine(prev, (s, c))
            return
        case = (
            window_case_tensor(windows, rows, states, m.shape[1], f.device)
            if head.case_features
            else None
        )
        logits = head.head(f, m, case)
        probs = torch.softmax(logits.float(), dim=-1).cpu()
        for j, row in enumerate(rows):
            w = windows[row]
            st = states[w.text_index]
            n = len(st.encoding.ids)
            table = st.token_probs.get(head.name)
            if table is None:
                table = torch.zeros(n, len(head.labels))
                st.token_probs[head.name] = table
            lo, hi = max(w.own_start, w.start), min(w.own_end, w.end)
            if hi > lo:
                first = 1 + (lo - w.start)  # +1 skips the leading special token
                table[lo:hi] = probs[j, first : first + (hi - lo)]

    def _classify(
        self, states: Sequence[_TextState], heads: HeadSet
    ) -> list[dict[str, dict[str, Any]]]:
        """Every sequence head's answer for every text that asked for it, one classifier call
        per head (the windows' pooled sums are complete once all micro-batches ran)."""
        out: list[dict[str, dict[str, Any]]] = [{} for _ in states]
        for name, head in heads.heads.items():
            if not isinstance(head.head, SequenceClassificationHead):
                continue
            asked = [i for i, st in enumerate(states) if name in st.tasks]
            if not asked:
                continue
            sums = torch.stack([states[i].pooled[name][0] for i in asked])
            counts = torch.stack([states[i].pooled[name][1] for i in asked])
            dtype = head.layers_dtype
            with torch.inference_mode():
                logits = head.head.classify(sums.to(dtype), counts.to(dtype))
            probs = torch.softmax(logits.float(), dim=-1)
            for j, i in enumerate(asked):
                out[i][name] = classification_answer(probs[j], head.labels)
        return out

    def _answer(
        self, st: _TextState, heads: HeadSet, classified: dict[str, dict[str, Any]]
    ) -> dict[str, Any]:
        answer: dict[str, Any] = {}
        for name in sorted(st.tasks):
            if name in classified:
                answer[name] = classified[name]
                continue
            head = heads.heads[name]
            table = st.token_probs.get(name, torch.zeros(0, len(head.labels)))
            best = table.argmax(dim=-1).tolist() if len(table) else []
            scores = table.max(dim=-1).values.tolist() if len(table) else []
            tags = [head.labels[i] for i in best]
            enc = st.encoding
            words = words_from_tokens(st.text, enc.offsets, enc.word_ids, tags, scores)
            answer[name] = decode_entities(st.text, words)
        if st.main:
            answer[self.main_task] = st.main_output
        return answer


def window_case_tensor(
    windows: Sequence[Window],
    rows: list[int],
    states: Sequence[_TextState],
    width: int,
    device: torch.device,
) -> torch.Tensor:
    """(rows, width) casing classes of the windows' positions, read from each original text
    at its tokens' offsets; special tokens and padding get the special class."""
    out = []
    for row in rows:
        w = windows[row]
        st = states[w.text_index]
        ids = token_case_ids(st.text, st.encoding.offsets[w.start : w.end])
        out.append(window_case_ids(ids, 0, len(ids), width))
    return torch.tensor(out, dtype=torch.long, device=device)
