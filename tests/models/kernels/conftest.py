"""Kernel tests on CPU run Triton's interpreter.

TRITON_INTERPRET must be set before ``triton.language`` and the kernel module
(models.kernels.triton_accumulate, whose ``@triton.jit`` reads it) are first imported.
tests/conftest.py sets it at import time, on machines without CUDA only; this conftest does
the same for runs of this folder alone. There nothing compiles Triton kernels, so the rest
of the suite is unaffected. On a CUDA machine the interpreter is left off and the
compiled-kernel tests (test_kernel_gpu.py) check the same table on the GPU.
"""

from __future__ import annotations

import os
import sys

import pytest
import torch

if "triton" not in sys.modules and not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

pytest.importorskip("triton", reason="triton is not installed")


def interpreter_ready() -> bool:
    """True when triton.language and the kernel were imported in interpreter mode (see the
    module docstring)."""
    import triton.language as tl
    from triton.runtime.interpreter import InterpretedFunction

    from models.kernels.triton_accumulate import INTERPRETED

    return INTERPRETED and isinstance(tl.zeros, InterpretedFunction)


@pytest.fixture
def interpreter(monkeypatch: pytest.MonkeyPatch) -> None:
    """CPU kernel tests: skip with the reason when Triton was imported compiled."""
    if not interpreter_ready():
        if not torch.cuda.is_available():
            pytest.fail("TRITON_INTERPRET=1 was not set before triton or the kernel was imported")
        pytest.skip(
            "triton or the kernel was imported before TRITON_INTERPRET=1 (or CUDA is present); "
            "run `pytest tests/models/kernels` on a CPU machine for the interpreter checks"
        )
    monkeypatch.setenv("TRITON_INTERPRET", "1")
