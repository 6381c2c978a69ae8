"""Temperature scaling and calibration error: a head's ``score`` should mean what it says.

A head trained to low loss is over-confident on text it has not seen; one scalar T per head,
fitted on the validation split by minimising the negative log-likelihood of softmax(z / T)
(Guo et al., 2017), fixes most of it without changing any prediction (argmax is unchanged
for T > 0). T is stored in the manifest and applied by the head module itself, so the
engine's answers use it with no change to the engine.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

T_MIN, T_MAX = 0.05, 20.0


def fit_temperature(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """The T in [0.05, 20] that minimises the NLL of ``labels`` under softmax(logits / T).

    The NLL is convex in 1/T, so a bounded one-dimensional search finds its minimum.
    """
    z, y = logits.double(), labels.long()
    if len(y) == 0:
        return 1.0

    def nll(inv_t: float) -> float:
        return float(F.cross_entropy(z * inv_t, y))

    lo, hi = 1 / T_MAX, 1 / T_MIN
    for _ in range(80):  # golden-section search on 1/T
        a, b = hi - (hi - lo) / 1.618034, lo + (hi - lo) / 1.618034
        if nll(a) < nll(b):
            hi = b
        else:
            lo = a
    return float(1 / ((lo + hi) / 2))


def reliability(probs: np.ndarray, labels: Sequence[int], bins: int = 10) -> list[dict[str, float]]:
    """Per confidence bin (equal width on [0, 1]) of the top label: the mean confidence,
    the accuracy and the count; empty bins are left out."""
    probs = np.asarray(probs, dtype=np.float64)
    conf = probs.max(axis=1)
    hit = (probs.argmax(axis=1) == np.asarray(labels)).astype(np.float64)
    which = np.minimum((conf * bins).astype(int), bins - 1)
    out = []
    for b in range(bins):
        sel = which == b
        if sel.any():
            out.append(
                {
                    "confidence": float(conf[sel].mean()),
                    "accuracy": float(hit[sel].mean()),
                    "count": int(sel.sum()),
                }
            )
    return out


def ece(probs: np.ndarray, labels: Sequence[int], bins: int = 10) -> float:
    """Expected calibration error of the top label: the count-weighted mean gap between
    confidence and accuracy over :func:`reliability`'s bins."""
    rows = reliability(probs, labels, bins)
    total = sum(r["count"] for r in rows)
    return float(sum(r["count"] * abs(r["confidence"] - r["accuracy"]) for r in rows) / total)


def calibration_report(
    logits: torch.Tensor, labels: Sequence[int], temperature: float, bins: int = 10
) -> dict[str, Any]:
    """ECE before (T = 1) and after scaling, and the reliability bins after."""
    y = list(labels)
    raw = torch.softmax(logits.double(), -1).numpy()
    scaled = torch.softmax(logits.double() / temperature, -1).numpy()
    return {
        "ece_raw": ece(raw, y, bins),
        "ece": ece(scaled, y, bins),
        "bins": reliability(scaled, y, bins),
        "bins_raw": reliability(raw, y, bins),
    }
