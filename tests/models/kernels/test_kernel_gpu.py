"""The compiled kernel: builds for Hopper on any machine; on CUDA, equals the oracle, autotuned."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from models.kernels.accumulate import Segment, accumulate_torch, accumulate_triton

HERE = Path(__file__).resolve().parent
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
TOLERANCE = {torch.float32: (1e-4, 1e-4), torch.float16: (3e-3, 3e-3), torch.bfloat16: (2e-2, 1e-2)}


def test_kernel_compiles_for_hopper_in_every_dtype() -> None:
    """Triton -> PTX -> cubin for sm_90 needs no GPU; catches what the interpreter accepts
    but the compiler refuses. In a subprocess: this process may have Triton in interpreter
    mode."""
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env["TRITON_DEFAULT_FP_FUSION"] = "1"
    out = subprocess.run(
        [sys.executable, str(HERE / "offline_compile.py"), "--arch", "90"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    lines = out.stdout.strip().splitlines()
    assert [line.split()[1] for line in lines] == ["fp16", "bf16", "fp32"]
    for line in lines:
        assert "registers=" in line or "compiled" in line


def _case(
    rows: int, hidden: int, ks: tuple[int, ...], dtype: torch.dtype
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, tuple[Segment, ...]]:
    gen = torch.Generator(device="cuda").manual_seed(rows + hidden + sum(ks))
    segments, w_off, a_off = [], 0, 1
    for i, k in enumerate(ks):
        segments.append(Segment(w_off, a_off, k, 0.1 + 0.2 * i))
        w_off += k
        a_off += k + 3
    z = torch.randn(rows, hidden, generator=gen, device="cuda").to(dtype)
    weight = (torch.randn(w_off, hidden, generator=gen, device="cuda") / hidden**0.5).to(dtype)
    acc = torch.randn(rows, a_off, generator=gen, device="cuda")
    return acc, z, weight, tuple(segments)


@pytest.mark.gpu
@needs_cuda
@pytest.mark.parametrize("dtype", list(TOLERANCE), ids=str)
@pytest.mark.parametrize(
    ("rows", "hidden", "ks"),
    [
        (1, 64, (16,)),
        (7, 96, (16, 32, 64)),
        (130, 384, (64, 64, 128)),
        (4099, 1024, (64, 64, 128)),  # RoBERTa-large, rows not a multiple of any tile
        (513, 4096, (256, 256, 256, 256)),  # the limits: H 4096, Σk 1024
        (64, 768, (48, 100, 16)),
    ],
)
def test_compiled_kernel_equals_torch(
    rows: int, hidden: int, ks: tuple[int, ...], dtype: torch.dtype, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(torch.backends.cuda.matmul, "allow_tf32", False)
    acc, z, weight, segments = _case(rows, hidden, ks, dtype)
    expected = acc.clone()
    accumulate_torch(expected, z, weight, segments)
    accumulate_triton(acc, z, weight, segments)  # first call autotunes: trials must not leak
    atol, rtol = TOLERANCE[dtype]
    torch.testing.assert_close(acc, expected, atol=atol, rtol=rtol)


@pytest.mark.gpu
@needs_cuda
def test_compiled_kernel_reads_strided_views() -> None:
    acc, z, weight, segments = _case(257, 1024, (64, 64, 128), torch.float16)
    wide = torch.zeros(z.shape[0], 2 * z.shape[1], device="cuda", dtype=z.dtype)
    wide[:, ::2] = z
    expected = acc.clone()
    accumulate_torch(expected, z, weight, segments)
    accumulate_triton(acc, wide[:, ::2], weight, segments)
    torch.testing.assert_close(acc, expected, atol=3e-3, rtol=3e-3)


@pytest.mark.gpu
@needs_cuda
def test_start_up_check_serves_the_kernel_on_this_gpu() -> None:
    """What a replica does before serving: the compiled kernel passes its own check for
    every dtype pair a server can run, so ``auto`` picks it here."""
    from models.kernel_check import choose_kernel

    pairs = [(d, d) for d in (torch.float32, torch.float16, torch.bfloat16)]
    pairs.append((torch.float32, torch.bfloat16))  # float32 backbone, bf16 accumulator
    choice = choose_kernel("auto", torch.device("cuda"), pairs)
    assert choice.path == "triton", choice.reason
