"""Where the shipped heads live (trained on the embedded default backbone)."""

from __future__ import annotations

from pathlib import Path

PRETRAINED_HEADS = Path(__file__).resolve().parent / "pretrained"
