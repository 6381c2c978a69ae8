"""Metrics: accuracy + MCC (scikit-learn) for classification, seqeval entity P/R/F1 for NER,
micro/macro F1 (scikit-learn) for multi-label classification.

NER is scored on the data set's own words: the engine's entity spans (character offsets)
are mapped back to the words they cover, so the score is about what users receive.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike
from sklearn.metrics import (
    accuracy_score,
    confusion_matrix,
    f1_score,
    matthews_corrcoef,
    precision_recall_fscore_support,
)

from heads.answers import Entity


def classification_metrics(
    y_true: Sequence[int], y_pred: Sequence[int], labels: Sequence[str]
) -> dict[str, Any]:
    """Accuracy, Matthews correlation and the confusion matrix (rows = true label)."""
    idx = list(range(len(labels)))
    return {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "mcc": float(matthews_corrcoef(y_true, y_pred)),
        "n": len(y_true),
        "correct": int(sum(int(a == b) for a, b in zip(y_true, y_pred, strict=True))),
        "labels": list(labels),
        "confusion": confusion_matrix(y_true, y_pred, labels=idx).tolist(),
    }


def multilabel_metrics(
    y_true: ArrayLike, y_pred: ArrayLike, labels: Sequence[str]
) -> dict[str, Any]:
    """Micro F1 (as ``f1``, with micro precision and recall), macro F1, the exact-match share
    (``accuracy``: every label of the text right) and per-label P/R/F1; rows are texts,
    columns labels, values 0/1. A label never true nor predicted scores 0 in the macro mean."""
    true, pred = np.asarray(y_true, dtype=np.int64), np.asarray(y_pred, dtype=np.int64)
    p, r, f, support = precision_recall_fscore_support(true, pred, zero_division=0)
    micro_p, micro_r, micro_f, _ = precision_recall_fscore_support(
        true, pred, average="micro", zero_division=0
    )
    return {
        "f1": float(micro_f),
        "precision": float(micro_p),
        "recall": float(micro_r),
        "macro_f1": float(f1_score(true, pred, average="macro", zero_division=0)),
        "accuracy": float(accuracy_score(true, pred)),
        "n": int(true.shape[0]),
        "labels": list(labels),
        "per_label": {
            name: {
                "precision": float(p[i]),
                "recall": float(r[i]),
                "f1": float(f[i]),
                "support": int(support[i]),
            }
            for i, name in enumerate(labels)
        },
    }


def word_spans(tokens: Sequence[str]) -> list[tuple[int, int]]:
    """Character span of each word in ``" ".join(tokens)``."""
    spans, pos = [], 0
    for tok in tokens:
        spans.append((pos, pos + len(tok)))
        pos += len(tok) + 1
    return spans


def entities_to_tags(tokens: Sequence[str], entities: Sequence[Entity]) -> list[str]:
    """BIO tags on the given words from entity character spans (first word B-, rest I-)."""
    tags = ["O"] * len(tokens)
    for ent in entities:
        start, end, label = ent.start, ent.end, ent.label
        covered = [i for i, (a, b) in enumerate(word_spans(tokens)) if a < end and b > start]
        for j, i in enumerate(covered):
            if tags[i] == "O":
                tags[i] = ("B-" if j == 0 else "I-") + label
    return tags


def ner_metrics(
    true_tags: Sequence[Sequence[str]], pred_tags: Sequence[Sequence[str]]
) -> dict[str, Any]:
    """seqeval entity-level precision/recall/F1, overall and per type, plus tag confusion."""
    from seqeval.metrics import classification_report, f1_score, precision_score, recall_score

    y_true = [list(t) for t in true_tags]
    y_pred = [list(p) for p in pred_tags]
    report = classification_report(y_true, y_pred, output_dict=True, zero_division=0)
    per_type = {
        name: {
            "precision": float(v["precision"]),
            "recall": float(v["recall"]),
            "f1": float(v["f1-score"]),
            "support": int(v["support"]),
        }
        for name, v in report.items()
        if "avg" not in name
    }
    tag_set = sorted({t for s in y_true + y_pred for t in s})
    flat_true = [tag_set.index(t) for s in y_true for t in s]
    flat_pred = [tag_set.index(t) for s in y_pred for t in s]
    return {
        "precision": float(precision_score(y_true, y_pred, zero_division=0)),
        "recall": float(recall_score(y_true, y_pred, zero_division=0)),
        "f1": float(f1_score(y_true, y_pred, zero_division=0)),
        "n": len(y_true),
        "per_type": per_type,
        "labels": tag_set,
        "confusion": confusion_matrix(flat_true, flat_pred, labels=range(len(tag_set))).tolist(),
    }


def format_table(result: Mapping[str, Any]) -> str:
    """A readable summary of a metrics dict (classification or NER)."""
    lines = []
    if "per_label" in result:
        lines.append(
            f"micro P {result['precision']:.4f}  R {result['recall']:.4f}  F1 {result['f1']:.4f}"
            f"  macro F1 {result['macro_f1']:.4f}  exact {result['accuracy']:.4f}"
            f"  ({result['n']} texts)"
        )
        lines.append(f"{'label':<12}{'P':>8}{'R':>8}{'F1':>8}{'support':>9}")
        for name, v in result["per_label"].items():
            lines.append(
                f"{name:<12}{v['precision']:>8.4f}{v['recall']:>8.4f}{v['f1']:>8.4f}"
                f"{v['support']:>9}"
            )
        return "\n".join(lines)
    if "f1" in result:
        lines.append(
            f"entity  P {result['precision']:.4f}  R {result['recall']:.4f}  "
            f"F1 {result['f1']:.4f}  ({result['n']} sentences)"
        )
        lines.append(f"{'type':<8}{'P':>8}{'R':>8}{'F1':>8}{'support':>9}")
        for name, v in sorted(result["per_type"].items()):
            lines.append(
                f"{name:<8}{v['precision']:>8.4f}{v['recall']:>8.4f}{v['f1']:>8.4f}{v['support']:>9}"
            )
    else:
        lines.append(
            f"accuracy {result['accuracy']:.4f}  MCC {result['mcc']:.4f}  "
            f"({result['correct']}/{result['n']})"
        )
    labels = result["labels"]
    width = max(8, *(len(x) + 1 for x in labels))
    lines.append("confusion (rows true, columns predicted):")
    lines.append(" " * width + "".join(f"{x:>{width}}" for x in labels))
    for name, row in zip(labels, result["confusion"], strict=True):
        lines.append(f"{name:>{width}}" + "".join(f"{v:>{width}}" for v in row))
    return "\n".join(lines)
