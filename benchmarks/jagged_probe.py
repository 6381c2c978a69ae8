"""What torch's jagged nested-tensor SDPA does on a device (issue 20.2's padding-free question).

On CPU (torch 2.13) it runs, but the nested SDPA dispatcher finds no fused kernel for jagged
tensors there (flash and memory-efficient attention need CUDA) and takes its MATH branch:
the jagged tensors are copied into strided nested tensors and attention runs unfused. This
probe records the backend it picks, whether the result matches per-row dense attention and
its time against a padded, masked SDPA and against dense SDPA per row.
"""

from __future__ import annotations

import time
from typing import Any

import torch

from benchmarks import common


def backend(q: torch.Tensor, offsets: torch.Tensor) -> str:
    """The backend the nested SDPA dispatcher picks (a private torch function: best effort)."""
    try:
        from torch.nested._internal.sdpa import _select_sdp_backend

        nt = torch.nested.nested_tensor_from_jagged(q, offsets).transpose(1, 2)
        return str(_select_sdp_backend(nt, nt, nt, None, 0.0, False, False))
    except Exception as exc:  # the private API moved: say so rather than fail
        return f"unknown ({type(exc).__name__}: {exc})"


def probe_jagged_sdpa(device: torch.device, dtype: torch.dtype, clock: str) -> dict[str, Any]:
    """Does jagged NJT SDPA run here, match per-row attention, and how fast is it against a
    padded masked SDPA and per-length dense calls? (Long-tailed rows, MiniLM's 12x32 heads.)"""
    lengths, heads, size = [256, 40, 31, 28, 25, 22, 18, 12], 12, 32
    now = time.process_time if clock == "cpu" else time.perf_counter
    out: dict[str, Any] = {"torch": torch.__version__, "device": str(device)}
    out["dtype"] = str(dtype).removeprefix("torch.")
    out["row_lengths"] = lengths
    with torch.inference_mode():
        q = torch.randn(sum(lengths), heads, size, device=device, dtype=dtype)
        offsets = torch.tensor([0, *torch.tensor(lengths).cumsum(0).tolist()], device=device)
        mask = (
            torch.arange(max(lengths), device=device)[None, :]
            < torch.tensor(lengths, device=device)[:, None]
        )
        index = mask.flatten().nonzero().squeeze(1)

        def jagged() -> torch.Tensor:
            nt = torch.nested.nested_tensor_from_jagged(q, offsets).transpose(1, 2)
            o = torch.nn.functional.scaled_dot_product_attention(nt, nt, nt)
            return o.transpose(1, 2).values()

        def padded() -> torch.Tensor:
            full = q.new_zeros(mask.numel(), heads, size).index_copy_(0, index, q)
            p = full.view(len(lengths), -1, heads, size).transpose(1, 2)
            o = torch.nn.functional.scaled_dot_product_attention(
                p, p, p, attn_mask=mask[:, None, None]
            )
            return o.transpose(1, 2).reshape(-1, heads, size).index_select(0, index)

        def per_row() -> torch.Tensor:
            parts = []
            for a, b in zip(offsets[:-1].tolist(), offsets[1:].tolist(), strict=True):
                r = q[a:b].transpose(0, 1)[None]
                parts.append(torch.nn.functional.scaled_dot_product_attention(r, r, r)[0])
            return torch.cat([p.transpose(0, 1) for p in parts])

        out["jagged_backend"] = backend(q, offsets)
        reference = per_row()
        variants = {"padded_masked_sdpa": padded, "dense_sdpa_per_row": per_row}
        try:
            got = jagged()
            out["jagged_sdpa"] = "runs"
            out["jagged_max_abs_diff"] = float((got.float() - reference.float()).abs().max())
            variants["jagged_njt_sdpa"] = jagged
        except Exception as exc:  # what fails is the finding
            out["jagged_sdpa"] = f"fails: {type(exc).__name__}: {exc}"
        ms = {}
        for name, fn in variants.items():
            times = []
            for _ in range(7):
                common.synchronize(device)
                t0 = now()
                fn()
                common.synchronize(device)
                times.append(now() - t0)
            ms[name] = 1000 * min(times)
        out[f"attention_ms_best_of_7_{clock}_clock"] = ms
    return out
