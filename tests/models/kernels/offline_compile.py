"""Compile the fused kernel for a GPU architecture without a GPU (Triton -> PTX -> cubin).

Run without TRITON_INTERPRET. Prints one line per (dtype, config): registers and spills as
ptxas reports them. Used by test_kernel_gpu.py (in a subprocess) and docs/kernel.md:

    .venv/bin/python tests/models/kernels/offline_compile.py --arch 90 --all
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

from models.kernels.triton_accumulate import (
    GPU_CONFIGS,
    GROUP_TARGET,
    INTERPRETED,
    fused_accumulate,
)

DIVISIBLE = ("H", "stride_am", "stride_zm", "stride_wk", "SUM_K")


def compile_one(
    dtype: str, config: tuple[int, int, int, int], arch: int, group_k: int, precision: str
) -> str:
    """Compile one specialisation as the JIT would for contiguous, 16-aligned tensors."""
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    block_m, block_h, warps, stages = config
    fn = fused_accumulate
    names = fn.arg_names
    ints = ["N", "H", "SUM_K", "MAX_SEGS", "ROW_BUCKET", "stride_am", "stride_zm", "stride_wk"]
    signature = {"acc_ptr": "*fp32", "z_ptr": f"*{dtype}", "w_ptr": f"*{dtype}"}
    signature |= {"table_ptr": "*i32", "scales_ptr": "*fp32", "eps": "fp32"}
    signature |= {name: "i32" for name in ints}
    constants = {"stride_ak": 1, "stride_zh": 1, "stride_wh": 1, "GROUP_K": group_k}
    constants |= {"DOT_PRECISION": precision, "EXACT_UPCAST": False}
    constants |= {"BLOCK_M": block_m, "BLOCK_H": block_h}
    signature |= {name: "constexpr" for name in constants}
    signature = {name: signature[name] for name in names}
    attrs = {
        (names.index(n),): [["tt.divisibility", 16]]
        for n, t in signature.items()
        if t.startswith("*") or n in DIVISIBLE
    }
    source = ASTSource(
        fn=fn,
        signature=signature,
        constexprs={(names.index(k),): v for k, v in constants.items()},
        attrs=attrs,
    )
    kernel = triton.compile(
        source,
        target=GPUTarget("cuda", arch, 32),
        options={"num_warps": warps, "num_stages": stages},
    )
    return _ptxas_report(kernel.asm["ptx"], arch)


def _ptxas_report(ptx: str, arch: int) -> str:
    import triton

    ptxas = Path(triton.__file__).parent / "backends/nvidia/bin/ptxas-blackwell"
    if not ptxas.exists():
        return "compiled (no ptxas to report registers)"
    suffix = "a" if arch >= 90 else ""
    with tempfile.NamedTemporaryFile("w", suffix=".ptx", delete=False) as f:
        f.write(ptx)
    try:
        out = subprocess.run(
            [str(ptxas), "-v", f"--gpu-name=sm_{arch}{suffix}", f.name, "-o", os.devnull],
            capture_output=True,
            text=True,
            check=True,
        )
    finally:
        os.unlink(f.name)
    text = out.stdout + out.stderr
    regs = re.search(r"Used (\d+) registers", text)
    spill = re.search(r"(\d+) bytes spill stores", text)
    used = regs.group(1) if regs else "?"
    return f"registers={used} spill_stores={spill.group(1) if spill else '?'}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--arch", type=int, default=90, help="SM version, e.g. 80 or 90.")
    parser.add_argument("--all", action="store_true", help="Every autotune config, not one.")
    parser.add_argument("--dtypes", default="fp16,bf16,fp32")
    parser.add_argument("--group-k", type=int, default=GROUP_TARGET)
    args = parser.parse_args(argv)
    if INTERPRETED:  # the kernel was decorated under TRITON_INTERPRET=1: nothing to compile
        raise SystemExit("unset TRITON_INTERPRET: this compiles the kernel")
    configs = GPU_CONFIGS if args.all else GPU_CONFIGS[5:6]
    for dtype in args.dtypes.split(","):
        for config in configs:
            report = compile_one(dtype, config, args.arch, args.group_k, "ieee")
            print(f"sm_{args.arch} {dtype} GROUP_K={args.group_k} config={config}: {report}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
