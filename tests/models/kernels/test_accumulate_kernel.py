"""The fused Triton kernel equals the torch oracle (interpreter on CPU) and refuses bad input."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

from models.kernels.accumulate import Segment, accumulate_torch, accumulate_triton

pytestmark = pytest.mark.usefixtures("interpreter")

# Per dtype: (atol, rtol). fp32 is the 1e-4. In half precision the oracle rounds the
# projection to fp16/bf16 before its LayerNorm while the kernel keeps it in fp32, so the two
# differ by about one half-precision ulp of the normalised values (|x| <= ~4).
TOLERANCE = {
    torch.float32: (1e-4, 1e-4),
    torch.float16: (3e-3, 3e-3),
    torch.bfloat16: (2e-2, 1e-2),
}


def _case(
    rows: int, hidden: int, ks: tuple[int, ...], dtype: torch.dtype, scales: tuple[float, ...] = ()
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, tuple[Segment, ...]]:
    """Random inputs; acc columns of the tasks interleaved with gaps (as when a task is off)."""
    gen = torch.Generator().manual_seed(rows * 1000 + hidden + sum(ks))
    segments, w_off, a_off = [], 0, 3
    for i, k in enumerate(ks):
        scale = scales[i] if scales else 0.2 + 0.3 * i
        segments.append(Segment(w_off, a_off, k, scale))
        w_off += k
        a_off += k + 5
    z = (torch.randn(rows, hidden, generator=gen) * 2).to(dtype)
    weight = (torch.randn(w_off, hidden, generator=gen) / hidden**0.5).to(dtype)
    acc = torch.randn(rows, a_off, generator=gen)
    return acc, z, weight, tuple(segments)


def _assert_matches(
    acc: torch.Tensor, z: torch.Tensor, weight: torch.Tensor, segments: tuple[Segment, ...]
) -> None:
    expected = acc.clone()
    accumulate_torch(expected, z, weight, segments)
    accumulate_triton(acc, z, weight, segments)
    atol, rtol = max(TOLERANCE[weight.dtype], TOLERANCE[z.dtype])  # the less precise input
    torch.testing.assert_close(acc, expected, atol=atol, rtol=rtol)


@pytest.mark.parametrize("dtype", list(TOLERANCE), ids=str)
@pytest.mark.parametrize("hidden", [64, 96, 384])
@pytest.mark.parametrize("rows", [1, 7, 130])
def test_kernel_equals_torch_on_odd_shapes(rows: int, hidden: int, dtype: torch.dtype) -> None:
    """Rows not a multiple of the tile, H not a multiple of BLOCK_H, k=16/32/64 in one launch."""
    _assert_matches(*_case(rows, hidden, (16, 32, 64), dtype))


@pytest.mark.parametrize(
    ("ks", "scales"),
    [
        ((32,), ()),  # one task
        ((64, 16), (0.0, 1.0)),  # a zero layer weight adds nothing
        ((48, 24, 100), ()),  # sizes that are no power of two
        ((128, 64, 64, 16), ()),  # Σk > 128: two column groups share the layer
        ((256,), (0.5,)),  # the largest task on its own
    ],
)
@pytest.mark.parametrize("dtype", list(TOLERANCE), ids=str)
def test_kernel_equals_torch_for_task_mixes(
    ks: tuple[int, ...], scales: tuple[float, ...], dtype: torch.dtype
) -> None:
    _assert_matches(*_case(37, 96, ks, dtype, scales))


def test_zero_projection_adds_zero() -> None:
    """A zero W row block has zero variance: eps keeps it finite and nothing is added."""
    acc, z, weight, segments = _case(9, 64, (16, 32), torch.float32)
    weight[:16] = 0
    _assert_matches(acc, z, weight, segments)
    assert torch.isfinite(acc).all()


def test_half_precision_is_no_less_accurate_than_eager() -> None:
    """Against float64 truth the kernel (fp32 LayerNorm) is at least as close as the oracle."""
    acc, z, weight, segments = _case(64, 384, (16, 32, 64), torch.bfloat16)
    truth = acc.double()
    act = torch.nn.functional.gelu(z.float()).to(torch.bfloat16).double()
    proj = act @ weight.double().t()
    for seg in segments:
        part = proj[:, seg.weight_offset : seg.weight_offset + seg.size]
        normed = torch.nn.functional.layer_norm(part, (seg.size,), eps=1e-5)
        truth[:, seg.acc_offset : seg.acc_offset + seg.size] += seg.scale * normed
    eager, fused = acc.clone(), acc.clone()
    accumulate_torch(eager, z, weight, segments)
    accumulate_triton(fused, z, weight, segments)
    assert (fused.double() - truth).abs().max() <= (eager.double() - truth).abs().max() + 1e-6


def test_non_contiguous_inputs_are_read_through_their_strides() -> None:
    acc, z, weight, segments = _case(21, 96, (16, 32), torch.float32)
    z_t = z.t().contiguous().t()  # column-major view of the same values
    w_wide = torch.zeros(weight.shape[0], 2 * weight.shape[1])
    w_wide[:, ::2] = weight
    acc_wide = torch.zeros(acc.shape[0], acc.shape[1] * 2)
    acc_view = acc_wide[:, : acc.shape[1]]
    acc_view.copy_(acc)
    expected = acc.clone()
    accumulate_torch(expected, z, weight, segments)
    accumulate_triton(acc_view, z_t, w_wide[:, ::2], segments)
    torch.testing.assert_close(acc_view, expected, atol=1e-4, rtol=1e-4)
    assert (acc_wide[:, acc.shape[1] :] == 0).all()  # nothing written outside the view


def test_weight_rows_in_any_order() -> None:
    """Segments whose weight rows are not consecutive (not how plans build them) still work."""
    acc, z, weight, _ = _case(10, 64, (16, 32), torch.float32)
    segments = (Segment(32, 0, 16, 0.7), Segment(0, 20, 32, 0.4))
    weight = torch.cat([weight, torch.randn(16, 64)])
    _assert_matches(acc, z, weight, segments)


def test_no_rows_or_no_tasks_is_a_no_op() -> None:
    acc, z, weight, segments = _case(4, 64, (16,), torch.float32)
    before = acc.clone()
    accumulate_triton(acc, z, weight, ())
    accumulate_triton(acc[:0], z[:0], weight, segments)
    assert torch.equal(acc, before)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda a, z, w, s: (a.half(), z, w, s), "acc must be float32"),
        (lambda a, z, w, s: (a, z.long(), w, s), "z must be float32, float16 or bfloat16"),
        (lambda a, z, w, s: (a, z[:-1], w, s), "rows but acc has"),
        (lambda a, z, w, s: (a, z[:, :-1], w, s), "hidden size"),
        (lambda a, z, w, s: (a, z.unsqueeze(0), w, s), "must be 2-D"),
        (lambda a, z, w, s: (a, z, w[:20], s), "outside weight rows"),
        (lambda a, z, w, s: (a[:, :10], z, w, s), "outside acc columns"),
        (lambda a, z, w, s: (a, z, w, (*s, Segment(0, 4, 16, 1.0))), "overlaps"),
        (lambda a, z, w, s: (a, z, w, (Segment(0, 0, 2048, 1.0),)), "segment size"),
        (lambda a, z, w, s: (a, z, w, (Segment(0, 0, 16, float("nan")),)), "non-finite"),
        (lambda a, z, w, s: (a[:1].expand(5, -1), z[:5], w, s), "expanded"),
    ],
)
def test_bad_inputs_raise_clear_errors(change, message: str) -> None:  # type: ignore[no-untyped-def]
    acc, z, weight, segments = _case(5, 64, (16, 32), torch.float32)
    with pytest.raises(ValueError, match=message):
        accumulate_triton(*change(acc, z, weight, segments))


def test_cpu_tensors_need_the_interpreter(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TRITON_INTERPRET")
    with pytest.raises(ValueError, match="TRITON_INTERPRET=1"):
        accumulate_triton(*_case(3, 64, (16,), torch.float32))


def test_groups_hold_whole_tasks_in_one_power_of_two_tile() -> None:
    from models.kernels.triton_accumulate import group_width, pack_groups

    segments = tuple(Segment(0, 0, k, 1.0) for k in (64, 64, 128, 16))
    width = group_width(segments)
    assert width == 128
    groups = pack_groups(segments, width)
    assert [[s.size for s in g] for g in groups] == [[64, 64], [128], [16]]
    assert group_width((Segment(0, 0, 200, 1.0),)) == 256


def test_importing_the_module_does_not_import_triton() -> None:
    code = "import sys, models.kernels.accumulate; sys.exit('triton' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


@pytest.mark.parametrize(
    ("z_dtype", "w_dtype"),
    [
        (torch.float32, torch.bfloat16),
        (torch.float32, torch.float16),
        (torch.bfloat16, torch.float32),
    ],
    ids=str,
)
def test_hidden_states_and_weights_may_differ_in_dtype(
    z_dtype: torch.dtype, w_dtype: torch.dtype
) -> None:
    """A float32 backbone with bf16 heads (--head-dtype) feeds fp32 Z to bf16 projections."""
    acc, z, weight, segments = _case(7, 96, (16, 32), torch.float32)
    _assert_matches(acc, z.to(z_dtype), weight.to(w_dtype), segments)


def test_interpreter_switched_on_after_the_kernel_was_compiled_is_refused() -> None:
    """Triton decides interpreted or compiled when the kernel module is imported: a late
    TRITON_INTERPRET=1 gets a clear error naming the fix, not a launch on CPU pointers."""
    code = (
        "import os, torch\n"
        "import models.kernels.triton_accumulate\n"
        "from models.kernels.accumulate import Segment, accumulate_triton\n"
        "os.environ['TRITON_INTERPRET'] = '1'\n"
        "try:\n"
        "    accumulate_triton(torch.zeros(2, 16), torch.ones(2, 64), torch.ones(16, 64),"
        " (Segment(0, 0, 16, 1.0),))\n"
        "except ValueError as exc:\n"
        "    print(exc)\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=False
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert "set it before the first import" in out.stdout
