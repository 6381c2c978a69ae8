"""Metrics: accuracy + MCC (scikit-learn) for classification, seqeval entity P/R/F1 for NER.

NER is scored on the data set's own words: the engine's entity spans (character offsets)
are mapped back to the words they cover, so the score is about what users receive.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sklearn.metrics import accuracy_score, confusion_matrix, matthews_corrcoef

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
