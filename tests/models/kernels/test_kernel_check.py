"""The start-up kernel check: which accumulator path a replica serves with, decided on CPU
with Triton's interpreter and injected faults (the real check runs on CUDA at start-up)."""

from __future__ import annotations

import functools
import logging

import pytest
import torch

from models.kernel_check import (
    TOLERANCE,
    KernelCheckError,
    KernelChoice,
    choose_kernel,
    verify_kernel,
)
from models.kernels.accumulate import Segment, accumulate_triton

pytestmark = pytest.mark.usefixtures("interpreter")

CPU = torch.device("cpu")
CUDA = torch.device("cuda")  # only a label here: the checks below run on CPU tensors
F32 = (torch.float32, torch.float32)


def _off_by(amount: float):  # type: ignore[no-untyped-def]
    """The real kernel, then one wrong number: what a miscompiled kernel could do."""

    def kernel(acc: torch.Tensor, z: torch.Tensor, w: torch.Tensor, s: tuple[Segment, ...]) -> None:
        accumulate_triton(acc, z, w, s)
        acc[3, 7] += amount

    return kernel


def _raises(acc: torch.Tensor, z: torch.Tensor, w: torch.Tensor, s: tuple[Segment, ...]) -> None:
    raise RuntimeError("PTX: unsupported instruction")


def _on_cpu(kernel):  # type: ignore[no-untyped-def]
    """A verifier for a 'CUDA' device that runs the interpreted kernel on CPU tensors."""
    return lambda device, pair: verify_kernel(CPU, pair, kernel=kernel)


def _never(device: torch.device, pair: object) -> float:
    raise AssertionError("the kernel check ran where it should not")


@pytest.mark.parametrize("pair", [F32, (torch.float32, torch.bfloat16)], ids=str)
def test_the_real_kernel_passes_its_check(pair: tuple[torch.dtype, torch.dtype]) -> None:
    assert 0 <= verify_kernel(CPU, pair) <= max(TOLERANCE[d] for d in pair)


def test_a_wrong_number_or_nan_fails_the_check() -> None:
    verify_kernel(CPU, F32, kernel=_off_by(1e-5))  # within the tolerance: passes
    with pytest.raises(KernelCheckError, match=r"differs from the torch path by 0\.5"):
        verify_kernel(CPU, F32, kernel=_off_by(0.5))
    with pytest.raises(KernelCheckError, match="differs"):
        verify_kernel(CPU, F32, kernel=_off_by(float("nan")))
    with pytest.raises(KernelCheckError, match="raised RuntimeError: PTX"):
        verify_kernel(CPU, F32, kernel=_raises)


def test_auto_on_cuda_serves_triton_once_it_is_verified() -> None:
    choice = choose_kernel("auto", CUDA, [F32, F32], verify=_on_cpu(None))
    assert choice.path == "triton" and "verified against torch (float32/float32" in choice.reason


@pytest.mark.parametrize("kernel", [_off_by(0.5), _raises], ids=["mismatch", "exception"])
def test_auto_on_cuda_falls_back_to_torch_with_a_warning(
    kernel: object, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="models.kernel_check"):
        choice = choose_kernel("auto", CUDA, [F32], verify=_on_cpu(kernel))
    assert choice.path == "torch" and "Triton check failed" in choice.reason
    assert any("serving with the torch accumulator" in r.message for r in caplog.records)


def test_auto_falls_back_when_the_check_itself_cannot_run() -> None:
    def broken(device: torch.device, pair: object) -> float:
        raise torch.OutOfMemoryError("CUDA out of memory")

    assert choose_kernel("auto", CUDA, [F32], verify=broken).path == "torch"


def test_forced_triton_refuses_to_start_on_a_mismatch() -> None:
    verify = functools.partial(verify_kernel, kernel=_off_by(0.5))
    with pytest.raises(KernelCheckError, match="differs"):
        choose_kernel("triton", CPU, [F32], verify=verify)  # CPU: runs under the interpreter
    with pytest.raises(KernelCheckError, match="raised"):
        choose_kernel("triton", CUDA, [F32], verify=_on_cpu(_raises))
    assert choose_kernel("triton", CPU, [F32]).path == "triton"  # the real kernel passes


def test_no_check_where_the_kernel_does_not_serve(monkeypatch: pytest.MonkeyPatch) -> None:
    assert choose_kernel("auto", CPU, [F32], verify=_never) == KernelChoice("torch", "auto on cpu")
    assert choose_kernel("torch", CUDA, [F32], verify=_never).path == "torch"
    monkeypatch.setattr("models.kernel_check.triton_available", lambda: False)
    assert choose_kernel("auto", CUDA, [F32], verify=_never).path == "torch"
    with pytest.raises(KernelCheckError, match="not installed"):
        choose_kernel("triton", CUDA, [F32], verify=_never)
    monkeypatch.delenv("TRITON_INTERPRET")
    with pytest.raises(ValueError, match="TRITON_INTERPRET"):
        choose_kernel("triton", CPU, [F32], verify=_never)
    with pytest.raises(ValueError, match="kernel must be"):
        choose_kernel("fast", CUDA, [F32], verify=_never)
