"""The fused Triton accumulate kernel and its launcher (the torch oracle is in accumulate.py).

Liger-Kernel style: ``fused_accumulate`` is a module-level ``@triton.jit`` kernel. Triton's
``jit`` reads TRITON_INTERPRET when this module is imported: set, the kernel is interpreted
(CPU tensors, for tests; CUDA tensors are copied through the host); unset, it is compiled
and autotuned (CUDA tensors). So TRITON_INTERPRET=1 must be set before the first import of
this module to run the kernel on CPU (tests/conftest.py does so on machines without CUDA).
Callers go through :func:`models.kernels.accumulate.accumulate_triton`, which imports this
module on its first call: the torch path never imports triton.
"""

from __future__ import annotations

import functools
import math
from typing import Any

import torch
import triton
import triton.language as tl
from triton.runtime.interpreter import InterpretedFunction

from models.kernels.accumulate import Segment, interpreting

#: Largest k one task may have: a task's slice must fit whole in one program's column tile.
MAX_SEGMENT_SIZE = 1024
#: Column tile width programs aim for; more tasks (Σk > 128) go to more column groups, so Z
#: is read once per group (the later reads mostly hit L2). 128 keeps the fp32 projection tile
#: in registers on sm_90: ptxas's spill report per config is in docs/kernel.md#autotuning
#: (`tests/models/kernels/offline_compile.py --arch 90 --all` prints it again).
GROUP_TARGET = 128
_FLOAT_DTYPES = (torch.float32, torch.float16, torch.bfloat16)
_INT32_MAX = 2**31 - 1
#: (BLOCK_M, BLOCK_H, num_warps, num_stages) tried by the GPU autotuner.
GPU_CONFIGS = (
    (16, 64, 4, 3),
    (16, 128, 4, 3),
    (32, 64, 4, 3),
    (32, 64, 8, 3),
    (64, 32, 8, 4),
    (64, 64, 8, 3),
    (64, 64, 8, 4),
    (64, 128, 8, 2),
)
#: (BLOCK_M, BLOCK_H) the interpreter runs, without autotuning (see _launch).
INTERPRET_CONFIG = (64, 128)


def _next_pow2(n: int) -> int:
    return 1 << max(0, n - 1).bit_length()


def group_width(segments: tuple[Segment, ...]) -> int:
    """Column tile (a power of two, >= 16 for tl.dot) that holds the widest task whole."""
    total = sum(s.size for s in segments)
    widest = max(s.size for s in segments)
    return max(16, _next_pow2(widest), _next_pow2(min(total, GROUP_TARGET)))


def pack_groups(segments: tuple[Segment, ...], width: int) -> list[list[Segment]]:
    """Greedy, in order: consecutive tasks share one column tile while they fit in ``width``."""
    groups: list[list[Segment]] = [[]]
    used = 0
    for seg in segments:
        if used + seg.size > width:
            groups.append([])
            used = 0
        groups[-1].append(seg)
        used += seg.size
    return groups


def weight_order(segments: tuple[Segment, ...]) -> tuple[tuple[Segment, ...], tuple[int, ...]]:
    """Segments as the kernel needs them: each task's weight rows right after the previous one's.

    Returns the segments re-addressed to a packed weight and the packed weight's source rows
    (empty when ``weight`` is already in that order, as :class:`AccumulatorPlan` builds it).
    """
    packed: list[Segment] = []
    rows: list[int] = []
    offset = 0
    for seg in segments:
        packed.append(Segment(offset, seg.acc_offset, seg.size, seg.scale))
        rows.extend(range(seg.weight_offset, seg.weight_offset + seg.size))
        offset += seg.size
    in_order = rows == list(range(segments[0].weight_offset, segments[0].weight_offset + offset))
    if in_order:
        return segments, ()
    return tuple(packed), tuple(rows)


@functools.lru_cache(maxsize=256)
def _tables(
    segments: tuple[Segment, ...], width: int, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """Device lookup tables, built once per (layer plan, device) and cached.

    table  (G, 3 + 3*S) int32: per column group, the number of tasks, the weight row of tile
           column 0, the columns used; then each task's [lo, hi) tile columns and acc column
    scales (G, S) float32: each task's layer weight w_{t,i}
    """
    groups = pack_groups(segments, width)
    most = max(len(g) for g in groups)
    table = torch.zeros((len(groups), 3 + 3 * most), dtype=torch.int32)
    scales = torch.zeros((len(groups), most), dtype=torch.float32)
    for g, group in enumerate(groups):
        table[g, :3] = torch.tensor(
            [len(group), group[0].weight_offset, sum(s.size for s in group)]
        )
        lo = 0
        for s, seg in enumerate(group):
            table[g, 3 + 3 * s : 6 + 3 * s] = torch.tensor([lo, lo + seg.size, seg.acc_offset])
            scales[g, s] = seg.scale
            lo += seg.size
    return table.to(device), scales.to(device)


def _check(
    acc: torch.Tensor, z: torch.Tensor, weight: torch.Tensor, segments: tuple[Segment, ...]
) -> None:
    """Clear ValueErrors for everything the kernel cannot do, instead of wrong numbers."""
    if acc.dim() != 2 or z.dim() != 2 or weight.dim() != 2:
        raise ValueError(
            f"acc, z and weight must be 2-D, got shapes {tuple(acc.shape)}, {tuple(z.shape)}, "
            f"{tuple(weight.shape)}"
        )
    if acc.dtype != torch.float32:
        raise ValueError(f"acc must be float32 (the kernel accumulates in fp32), got {acc.dtype}")
    for name, t in (("z", z), ("weight", weight)):
        if t.dtype not in _FLOAT_DTYPES:
            raise ValueError(f"{name} must be float32, float16 or bfloat16, got {t.dtype}")
    if z.shape[0] != acc.shape[0]:
        raise ValueError(f"z has {z.shape[0]} rows but acc has {acc.shape[0]}")
    if z.shape[1] != weight.shape[1]:
        raise ValueError(f"z has hidden size {z.shape[1]} but weight has {weight.shape[1]}")
    if not (acc.device == z.device == weight.device):
        raise ValueError(f"tensors on different devices: {acc.device}, {z.device}, {weight.device}")
    if acc.device.type != "cuda" and not (acc.device.type == "cpu" and interpreting()):
        raise ValueError(
            f"the triton kernel needs CUDA tensors (CPU ones only under TRITON_INTERPRET=1), "
            f"got {acc.device}"
        )
    if acc.device.type == "cpu" and not INTERPRETED:
        raise ValueError(
            "CPU tensors need the interpreted kernel, but TRITON_INTERPRET=1 was set after "
            f"{__name__} was imported (compiled): set it before the first import"
        )
    if any(st == 0 and n > 1 for st, n in zip(acc.stride(), acc.shape, strict=True)):
        raise ValueError("acc must not be an expanded (stride 0) view: the kernel writes to it")
    taken: list[tuple[int, int]] = []
    for seg in segments:
        if not 1 <= seg.size <= MAX_SEGMENT_SIZE:
            raise ValueError(f"segment size must be in 1..{MAX_SEGMENT_SIZE}, got {seg}")
        if seg.weight_offset < 0 or seg.weight_offset + seg.size > weight.shape[0]:
            raise ValueError(f"{seg} reaches outside weight rows 0..{weight.shape[0]}")
        if seg.acc_offset < 0 or seg.acc_offset + seg.size > acc.shape[1]:
            raise ValueError(f"{seg} reaches outside acc columns 0..{acc.shape[1]}")
        if not math.isfinite(seg.scale):
            raise ValueError(f"{seg} has a non-finite scale")
        lo, hi = seg.acc_offset, seg.acc_offset + seg.size
        if any(a < hi and lo < b for a, b in taken):
            raise ValueError(f"{seg} overlaps another task's acc columns")
        taken.append((lo, hi))


def row_bucket(rows: int) -> int:
    """Coarse row-count class for the autotune key: few rows want small tiles (more programs)."""
    return 0 if rows <= 1024 else 1 if rows <= 8192 else 2


# ---------------------------------------------------------------------------------------------
# The kernel.
# ---------------------------------------------------------------------------------------------


@triton.jit
def fused_accumulate(
    acc_ptr, z_ptr, w_ptr, table_ptr, scales_ptr,
    N, H, SUM_K, MAX_SEGS, ROW_BUCKET,
    stride_am, stride_ak, stride_zm, stride_zh, stride_wk, stride_wh,
    eps,
    GROUP_K: tl.constexpr, DOT_PRECISION: tl.constexpr, EXACT_UPCAST: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_H: tl.constexpr,
):  # fmt: skip
    # One program = (row tile, column group of whole tasks). The Z tile is read once,
    # GELU'd in registers and multiplied by the group's W rows, BLOCK_H at a time, into
    # a (BLOCK_M, GROUP_K) fp32 projection; then per task: LayerNorm, scale, add to acc.
    pid_m = tl.program_id(0)
    g = tl.program_id(1)
    info = table_ptr + g * (3 + 3 * MAX_SEGS)
    w_base = tl.load(info + 1)
    used = tl.load(info + 2)
    rows = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    row_ok = rows < N
    cols = tl.arange(0, GROUP_K)
    col_ok = cols < used
    offs_h = tl.arange(0, BLOCK_H)
    proj = tl.zeros((BLOCK_M, GROUP_K), dtype=tl.float32)
    for h0 in range(0, H, BLOCK_H):
        h = h0 + offs_h
        h_ok = h < H
        z = tl.load(
            z_ptr + rows[:, None] * stride_zm + h[None, :] * stride_zh,
            mask=row_ok[:, None] & h_ok[None, :],
            other=0.0,
        ).to(tl.float32)
        act = 0.5 * z * (1.0 + tl.math.erf(z * 0.7071067811865476))  # exact (erf) GELU
        w = tl.load(
            w_ptr + (w_base + cols)[:, None] * stride_wk + h[None, :] * stride_wh,
            mask=col_ok[:, None] & h_ok[None, :],
            other=0.0,
        )
        if EXACT_UPCAST:
            # Interpreter only: round to bf16 (nearest even) by hand, keep it in fp32;
            # bf16 x bf16 products are exact in fp32, so the dot gives the same numbers.
            bits = act.to(tl.uint32, bitcast=True)
            bits = ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16) << 16
            a = bits.to(tl.float32, bitcast=True)
            w = w.to(tl.float32)
        else:
            a = act.to(w.dtype)  # the MMA operand dtype, rounded as torch rounds GELU(z)
        proj = tl.dot(a, tl.trans(w), proj, input_precision=DOT_PRECISION)
    for s in range(0, tl.load(info)):
        lo = tl.load(info + 3 + 3 * s)
        hi = tl.load(info + 4 + 3 * s)
        acc_col = tl.load(info + 5 + 3 * s)
        scale = tl.load(scales_ptr + g * MAX_SEGS + s)
        inside = ((cols >= lo) & (cols < hi))[None, :]
        count = (hi - lo).to(tl.float32)
        mean = tl.sum(tl.where(inside, proj, 0.0), axis=1) / count
        diff = tl.where(inside, proj - mean[:, None], 0.0)
        var = tl.sum(diff * diff, axis=1) / count
        out = diff * (scale / tl.sqrt(var + eps))[:, None]
        ptrs = acc_ptr + rows[:, None] * stride_am + (acc_col - lo + cols)[None, :] * stride_ak
        mask = row_ok[:, None] & inside
        tl.store(ptrs, tl.load(ptrs, mask=mask, other=0.0) + out, mask=mask)


#: True when this process imported the kernel under TRITON_INTERPRET=1 (see the module doc).
INTERPRETED = isinstance(fused_accumulate, InterpretedFunction)


def _prune(configs: list[Any], named_args: dict[str, Any], **kwargs: Any) -> list[Any]:
    """Keep configs that fit: no ptxas spills (the projection tile within 32 fp32 registers a
    thread, the staged Z and W tiles within 160 KB of shared memory: the limits seen on sm_90,
    docs/kernel.md#autotuning); and no row tile much taller than the rows there are."""
    width = kwargs.get("GROUP_K", named_args.get("GROUP_K", GROUP_TARGET))
    size = named_args["w_ptr"].element_size()
    rows = named_args["N"]

    def fits(c: Any) -> bool:
        m, h = c.kwargs["BLOCK_M"], c.kwargs["BLOCK_H"]
        smem = c.num_stages * (m + width) * h * size
        return m * width <= 32 * 32 * c.num_warps and smem <= 160 * 1024 and m <= max(16, rows)

    kept = [c for c in configs if fits(c)]
    return kept or [min(configs, key=lambda c: c.kwargs["BLOCK_M"])]


#: The compiled kernel, autotuned over GPU_CONFIGS (the interpreter runs INTERPRET_CONFIG only).
fused_accumulate_tuned = triton.autotune(
    configs=[
        triton.Config({"BLOCK_M": m, "BLOCK_H": h}, num_warps=w, num_stages=st)
        for m, h, w, st in GPU_CONFIGS
    ],
    key=["H", "SUM_K", "GROUP_K", "ROW_BUCKET"],  # the autotuner adds tensor dtypes
    prune_configs_by={"early_config_prune": _prune},
    restore_value=["acc_ptr"],  # benchmarking re-runs the in-place update: undo each trial
)(fused_accumulate)


def accumulate_triton(
    acc: torch.Tensor,
    z: torch.Tensor,
    weight: torch.Tensor,
    segments: tuple[Segment, ...],
    eps: float = 1e-5,
) -> None:
    """The launcher behind :func:`models.kernels.accumulate.accumulate_triton` (its contract):
    checks, tables, int32-safe row chunks, one launch per chunk."""
    segments = tuple(segments)
    _check(acc, z, weight, segments)
    if not segments or acc.shape[0] == 0:
        return
    segments, rows = weight_order(segments)
    if rows:  # tasks' weight rows out of order: gather them once into the order the tiles read
        weight = weight[torch.tensor(rows, device=weight.device)]
    width = group_width(segments)
    table, scales = _tables(segments, width, acc.device)
    precision = "tf32" if torch.backends.cuda.matmul.allow_tf32 else "ieee"
    # Triton 3.9's interpreter multiplies bf16 as raw uint16 bits in tl.dot and truncates
    # fp32 -> bf16 casts: the kernel works around both there (see EXACT_UPCAST).
    upcast = INTERPRETED and weight.dtype == torch.bfloat16
    total_k = sum(s.size for s in segments)
    # Offsets inside the kernel are int32: split huge inputs into row chunks below 2^31.
    reach = max(abs(acc.stride(0)), abs(z.stride(0)), 1) + max(acc.shape[1], z.shape[1])
    chunk = max(1, min(acc.shape[0], _INT32_MAX // reach))
    for start in range(0, acc.shape[0], chunk):
        a, x = acc[start : start + chunk], z[start : start + chunk]
        with torch.no_grad():
            _launch(
                a.shape[0], table.shape[0],
                a, x, weight, table, scales,
                a.shape[0], x.shape[1], total_k, scales.shape[1], row_bucket(a.shape[0]),
                *a.stride(), *x.stride(), *weight.stride(), eps,
                GROUP_K=width, DOT_PRECISION=precision, EXACT_UPCAST=upcast,
            )  # fmt: skip


def _launch(rows: int, groups: int, *args: Any, **meta: Any) -> None:
    """One launch over (row tiles, column groups): autotuned when compiled; interpreted, one
    config (the interpreter runs programs one at a time in numpy: few big tiles)."""
    if INTERPRETED:
        block_m, block_h = INTERPRET_CONFIG
        grid = (triton.cdiv(rows, block_m), groups)
        fused_accumulate[grid](*args, BLOCK_M=block_m, BLOCK_H=block_h, **meta)
    else:
        fused_accumulate_tuned[lambda config: (triton.cdiv(rows, config["BLOCK_M"]), groups)](
            *args, **meta
        )
