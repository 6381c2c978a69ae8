"""Fused kernels. Importing this package never imports Triton."""

from __future__ import annotations

import importlib.util


def triton_available() -> bool:
    """True when the triton package can be imported (it may still lack a GPU)."""
    return importlib.util.find_spec("triton") is not None
