"""PNG plots written next to every trained head: layer distribution and learning curves."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any


def pyplot() -> Any:
    """matplotlib.pyplot on the Agg backend (no display on servers)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_layer_weights(weights: Sequence[float], title: str, path: str | Path) -> None:
    """Bar chart of w_t over Z_0 (embeddings) .. Z_L."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5, 3))
    ax.bar(range(len(weights)), weights, color="tab:blue")
    ax.set_xticks(range(len(weights)))
    ax.set_xlabel("hidden state (0 = embeddings)")
    ax.set_ylabel("w_t")
    ax.set_ylim(0, 1)
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_curves(log: Sequence[dict[str, Any]], metric: str, title: str, path: str | Path) -> None:
    """Training loss and the selection metric (validation, or dev for legacy runs) against
    optimisation steps."""
    evals = [r for r in log if r.get("event") == "eval"]
    if not evals:
        return
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.2))
    steps = [r["step"] for r in evals]
    ax.plot(steps, [r["train_loss"] for r in evals], "o-", color="tab:red", label="train loss")
    ax.set_xlabel("step")
    ax.set_ylabel("train loss", color="tab:red")
    ax2 = ax.twinx()
    split = evals[-1].get("selected_on", "dev")
    values = [r.get("selection", r.get("dev")) for r in evals]
    ax2.plot(steps, values, "s-", color="tab:blue", label=f"{split} {metric}")
    ax2.set_ylabel(f"{split} {metric}", color="tab:blue")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


Bins = Sequence[dict[str, float]]


def plot_reliability(curves: dict[str, tuple[Bins, Bins]], title: str, path: str | Path) -> None:
    """Accuracy against confidence per set, before (dashed) and after temperature scaling;
    the diagonal is a perfectly calibrated head. ``curves``: set name -> (raw, scaled) bins."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    ax.plot([0, 1], [0, 1], color="grey", lw=0.8)
    for i, (name, (raw, scaled)) in enumerate(curves.items()):
        color = f"C{i}"
        ax.plot(
            [b["confidence"] for b in raw],
            [b["accuracy"] for b in raw],
            "x--",
            color=color,
            alpha=0.6,
            label=f"{name} (T = 1)",
        )
        ax.plot(
            [b["confidence"] for b in scaled],
            [b["accuracy"] for b in scaled],
            "o-",
            color=color,
            label=f"{name} (scaled)",
        )
    ax.set_xlabel("confidence of the top label")
    ax.set_ylabel("accuracy")
    ax.set_xlim(0, 1.01)
    ax.set_ylim(0, 1.01)
    ax.legend(fontsize=7)
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
