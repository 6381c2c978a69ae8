"""Head outputs of one micro-batch, and the answers built from them once a request is done.

A micro-batch first *computes* everything (backbone outputs, pooled sums, token
probabilities) and only then *commits* it into the texts' states: if anything raises while
computing, no state has changed and the batcher can retry a subset of the windows.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from engine.prepared import AnalyzeResult, PreparedRequest, TextState, WindowItem
from heads.answers import MainOutput, TaskAnswer, TextAnswers
from heads.casing import token_case_ids, window_case_ids
from heads.registry import HeadSet
from heads.task_head import TaskHead
from models.backbone import ForwardResult

Commit = Callable[[], None]


def main_commits(
    items: Sequence[WindowItem], out: ForwardResult, decode: Callable[[torch.Tensor], str]
) -> list[Commit]:
    """The main task's output (embedding or generated text) of every text's first window."""
    commits: list[Commit] = []
    for row, item in enumerate(items):
        st = item.state
        if item.window.start != 0 or not st.main:
            continue
        if out.embedding is not None:
            value: MainOutput = out.embedding[row].float().cpu().tolist()
        elif out.generated is not None:
            value = decode(out.generated[row])
        else:
            continue
        commits.append(_setter(st, value))
    return commits


def _setter(st: TextState, value: MainOutput) -> Commit:
    def commit() -> None:
        st.main_output = value

    return commit


def head_commits(
    head: TaskHead, features: torch.Tensor, mask: torch.Tensor, items: Sequence[WindowItem]
) -> list[Commit]:
    """Run ``head`` on the rows of ``items`` that asked for it; return what to store.

    What a window yields and how it merges into its text's value are the head kind's
    (``heads/kinds/``); the engine only keeps the merged value per text and head.
    """
    rows = [i for i, it in enumerate(items) if head.name in it.state.tasks]
    if not rows:
        return []
    index = torch.tensor(rows, device=features.device)
    f, m = features.index_select(0, index), mask.index_select(0, index)
    case = None
    if head.case_features:
        case = window_case_tensor([items[r] for r in rows], m.shape[1], f.device)
    outputs = head.kind.window_outputs(head.head, f, m, case)
    return [_merge_commit(head, items[row], out) for row, out in zip(rows, outputs, strict=True)]


def _merge_commit(head: TaskHead, item: WindowItem, output: object) -> Commit:
    def commit() -> None:
        st = item.state
        merged = st.outputs.get(head.name)
        st.outputs[head.name] = head.kind.merge(
            head.head, merged, output, item.window, len(st.encoding.ids)
        )

    return commit


def window_case_tensor(
    items: Sequence[WindowItem], width: int, device: torch.device
) -> torch.Tensor:
    """(rows, width) casing classes of the windows' positions, read from each original text
    at its tokens' offsets; special tokens and padding get the special class."""
    out = []
    for item in items:
        w, st = item.window, item.state
        ids = token_case_ids(st.text, st.encoding.offsets[w.start : w.end])
        out.append(window_case_ids(ids, 0, len(ids), width))
    return torch.tensor(out, dtype=torch.long, device=device)


def build_result(prepared: PreparedRequest, main_task: str) -> AnalyzeResult:
    """Merge every text's windows into its answers (all windows have run)."""
    return build_results([prepared], main_task)[0]


def build_results(prepared: Sequence[PreparedRequest], main_task: str) -> list[AnalyzeResult]:
    """:func:`build_result` of many requests, each head's answers built for all their texts
    at once (one classifier call, one batched Viterbi search): per-text Python is most of
    an answer's cost, and one-sentence requests would otherwise pay it one by one."""
    results: list[AnalyzeResult | None] = [None] * len(prepared)
    for group in _by_head_set(prepared):
        states = [st for i in group for st in prepared[i].texts]
        by_head = _head_answers(states, prepared[group[0]].heads)
        row = 0
        for i in group:
            answers = []
            for st in prepared[i].texts:
                answer: TextAnswers = {name: by_head[name][row] for name in sorted(st.tasks)}
                if st.main and st.main_output is not None:
                    answer[main_task] = st.main_output
                answers.append(answer)
                row += 1
            results[i] = AnalyzeResult(answers, prepared[i].tokens, prepared[i].layers_run)
    return [r for r in results if r is not None]


def _by_head_set(prepared: Sequence[PreparedRequest]) -> list[list[int]]:
    """Indices of ``prepared`` grouped by the head set each request was prepared with (a hot
    reload between two requests gives them different heads of the same name)."""
    groups: dict[int, list[int]] = {}
    for i, p in enumerate(prepared):
        groups.setdefault(id(p.heads), []).append(i)
    return list(groups.values())


def _head_answers(states: Sequence[TextState], heads: HeadSet) -> dict[str, dict[int, TaskAnswer]]:
    """Per head, the answer of every text that asked for it: one kind call per head (a
    sequence head classifies all its texts at once)."""
    out: dict[str, dict[int, TaskAnswer]] = {}
    for name, head in heads.heads.items():
        asked = [i for i, st in enumerate(states) if name in st.tasks]
        if not asked:
            continue
        got = head.kind.answers(
            head,
            [states[i].outputs.get(name) for i in asked],
            [states[i].text for i in asked],
            [states[i].encoding for i in asked],
        )
        out[name] = dict(zip(asked, got, strict=True))
    return out
