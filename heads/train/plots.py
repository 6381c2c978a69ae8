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
    """Training loss and the dev selection metric against optimisation steps."""
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
    ax2.plot(steps, [r["dev"] for r in evals], "s-", color="tab:blue", label=f"dev {metric}")
    ax2.set_ylabel(f"dev {metric}", color="tab:blue")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
