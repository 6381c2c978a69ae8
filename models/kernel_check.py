"""Start-up proof that the fused Triton kernel gives the torch path's numbers on this device.

The kernel is the default on CUDA, but a compiler, driver or GPU it was never run on can make
it wrong. Before a replica serves, :func:`choose_kernel` runs it once per dtype pair in use on
a small random case and compares it with :func:`accumulate_torch`: ``auto`` falls back to the
torch path (with a warning) on a mismatch or an exception, ``triton`` refuses to start.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import torch

from models.kernels import triton_available
from models.kernels.accumulate import Segment, accumulate_torch, interpreting

log = logging.getLogger(__name__)

#: (hidden state dtype, projection weight dtype): what the accumulator multiplies.
DtypePair = tuple[torch.dtype, torch.dtype]
Kernel = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, tuple[Segment, ...]], None]

#: Largest difference from the torch path allowed per operand dtype (the less precise one
#: counts). The kernel keeps the projection in fp32 where torch rounds it to half precision,
#: so half-precision cases differ by about one ulp of the normalised values (|x| <= ~4);
#: the tests of the kernel allow the same (tests/models/kernels).
TOLERANCE = {torch.float32: 1e-3, torch.float16: 1e-2, torch.bfloat16: 6e-2}


class KernelCheckError(RuntimeError):
    """The Triton kernel raised or disagreed with the torch path on this device."""


@dataclass(frozen=True)
class KernelChoice:
    """The accumulator path a process serves with, and why (shown in logs and /tasks)."""

    path: str  # "torch" or "triton"
    reason: str


def _case(
    device: torch.device, z_dtype: torch.dtype, w_dtype: torch.dtype, seed: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, tuple[Segment, ...]]:
    """Odd sizes on purpose: rows and hidden not multiples of any tile, two tasks with a gap,
    Σk above one column group, a zero layer weight."""
    gen = torch.Generator().manual_seed(seed)
    rows, hidden = 37, 200
    segments = (Segment(0, 0, 48, 0.6), Segment(48, 53, 96, 0.4), Segment(144, 149, 16, 0.0))
    z = (torch.randn(rows, hidden, generator=gen) * 2).to(device=device, dtype=z_dtype)
    weight = (torch.randn(160, hidden, generator=gen) / hidden**0.5).to(device, w_dtype)
    acc = torch.randn(rows, 165, generator=gen).to(device)
    return acc, z, weight, segments


def verify_kernel(
    device: torch.device, dtypes: DtypePair, kernel: Kernel | None = None, seed: int = 0
) -> float:
    """Run ``kernel`` (default: the Triton one) against the torch path on one small case.

    Returns the largest absolute difference; raises :class:`KernelCheckError` when it is over
    the tolerance, not finite, or the kernel raised.
    """
    if kernel is None:
        from models.kernels.accumulate import accumulate_triton

        kernel = accumulate_triton
    z_dtype, w_dtype = dtypes
    acc, z, weight, segments = _case(device, z_dtype, w_dtype, seed)
    expected = acc.clone()
    accumulate_torch(expected, z, weight, segments)
    try:
        kernel(acc, z, weight, segments)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
    except Exception as exc:
        raise KernelCheckError(f"the Triton kernel raised {type(exc).__name__}: {exc}") from exc
    error = float((acc - expected).abs().max())
    tolerance = max(TOLERANCE[z_dtype], TOLERANCE[w_dtype])
    if device.type == "cuda" and torch.backends.cuda.matmul.allow_tf32:
        tolerance = max(tolerance, TOLERANCE[torch.float16])  # TF32 keeps fp16's mantissa
    if not error <= tolerance:  # also catches NaN
        name = "/".join(str(d).removeprefix("torch.") for d in dtypes)
        raise KernelCheckError(
            f"the Triton kernel differs from the torch path by {error:.3g} "
            f"(tolerance {tolerance:g}) for {name}"
        )
    return error


Verifier = Callable[[torch.device, DtypePair], float]


def choose_kernel(
    setting: str,
    device: torch.device,
    dtypes: Iterable[DtypePair],
    verify: Verifier = verify_kernel,
) -> KernelChoice:
    """The path to serve with, from the ``kernel`` setting and a check on this device.

    ``torch``: torch. ``auto``: Triton on CUDA when it imports and passes ``verify`` for every
    dtype pair, else torch (a failed check is logged as a warning). ``triton``: the kernel,
    checked the same way; a failure raises :class:`KernelCheckError` (start-up fails).
    """
    if setting == "torch":
        return KernelChoice("torch", "set by the kernel setting")
    if setting not in ("auto", "triton"):
        raise ValueError(f"kernel must be auto, torch or triton, got {setting!r}")
    forced = setting == "triton"
    runnable = device.type == "cuda" or (forced and device.type == "cpu" and interpreting())
    if not runnable:
        if forced:
            raise ValueError("the triton kernel runs on CPU only under TRITON_INTERPRET=1")
        return KernelChoice("torch", f"auto on {device.type}")
    if not triton_available():
        if forced:
            raise KernelCheckError("kernel triton was asked for but triton is not installed")
        return KernelChoice("torch", "auto: triton is not installed")
    pairs = sorted(set(dtypes), key=str)
    errors = []
    try:
        for pair in pairs:
            errors.append(verify(device, pair))
    except Exception as exc:  # a check that cannot even run proves nothing either
        problem = exc if isinstance(exc, KernelCheckError) else KernelCheckError(f"{exc!r}")
        if forced:
            raise problem from exc
        log.warning("serving with the torch accumulator: %s", problem)
        return KernelChoice("torch", f"auto: Triton check failed ({problem})")
    names = ", ".join("/".join(str(d).removeprefix("torch.") for d in p) for p in pairs)
    return KernelChoice(
        "triton", f"{setting}: verified against torch ({names}; max error {max(errors):.2g})"
    )
