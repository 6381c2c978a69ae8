"""Build the engine from EngineSettings: backbone, heads, device, kernel.

Shared by `serve`, `analyze`, training's engine evaluation and the offline benchmarks.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from engine.core import Engine, EngineConfig, StageObserver
from engine.dtype_choice import SHIPPED_GATES, DtypeChoice, Hardware, choose_dtype, fingerprint
from engine.settings import EngineSettings
from heads.io import HeadLoadError, check_fingerprint, read_manifest
from heads.registry import HeadSet, head_folders, load_head_set
from heads.shipped import PRETRAINED_HEADS
from models.backbone import Backbone, BackboneInfo
from models.defaults import open_backbone
from models.hardware import cpu_has_fast_bf16
from models.kernel_check import KernelChoice, choose_kernel

log = logging.getLogger(__name__)

_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def hardware_of(device: torch.device) -> Hardware:
    """What ``device`` can do in half precision (bf16 instructions / CUDA bf16 support)."""
    if device.type == "cuda":
        return Hardware(cuda_bf16=torch.cuda.is_bf16_supported(including_emulation=False))
    return Hardware(cpu_fast_bf16=device.type == "cpu" and cpu_has_fast_bf16())


def load_backbone(
    settings: EngineSettings, gate_dir: Path = SHIPPED_GATES, hardware: Hardware | None = None
) -> Backbone:
    """The backbone in the dtype ``settings.dtype`` resolves to."""
    return load_backbone_with_dtype(settings, gate_dir, hardware)[0]


def load_backbone_with_dtype(
    settings: EngineSettings, gate_dir: Path = SHIPPED_GATES, hardware: Hardware | None = None
) -> tuple[Backbone, DtypeChoice]:
    """The backbone and the dtype choice behind it (``auto``: see engine/dtype_choice.py),
    which the engine keeps for the start-up log and /tasks. ``gate_dir`` and ``hardware``
    are for tests."""
    device = resolve_device(settings.device)
    if settings.dtype == "float16" and device.type == "cpu":
        raise ValueError(
            "dtype float16 needs a CUDA device; on CPU use float32 or bfloat16 (fast with AMX)"
        )
    if settings.dtype != "auto":
        backbone = open_backbone(
            settings.backbone, device, _DTYPES[settings.dtype], settings.max_length
        )
        choice = choose_dtype(settings.dtype, device, Hardware(), {})
    else:
        # Loaded in float32 (the fingerprint is taken from float32 weights either way), then
        # cast once the gate for exactly this backbone and these heads has been read.
        backbone = open_backbone(settings.backbone, device, torch.float32, settings.max_length)
        fp = fingerprint(backbone.info, head_roots(settings, backbone.info, quiet=True))
        choice = choose_dtype("auto", device, hardware or hardware_of(device), fp, gate_dir)
        if choice.dtype != torch.float32:
            backbone.model.to(dtype=choice.dtype)
    log.info("backbone dtype %s (dtype=%s: %s)", choice.name, choice.setting, choice.reason)
    return backbone, choice


def resolve_head_dtype(choice: str, backbone_dtype: torch.dtype) -> torch.dtype | None:
    """The heads' own layers' dtype; None = float32 (the modules as trained).

    ``auto`` follows a half-precision backbone: the dtype gate that let ``dtype: auto``
    pick it measured the heads that way (benchmarks/dtype_gate.py), their answers are those
    of float32 (benchmarks/results/head_dtype_cpu.json), and on a bfloat16 CPU pass the
    shipped heads cost 8 % less time than in float32 layers (docs/server.md#head-dtype).
    Beside a float32 backbone they stay float32 unless asked: there bfloat16 layers pay for
    large batches only (benchmarks/results/overhead_cpu_heads-bfloat16.json).
    """
    if choice != "auto":
        return _DTYPES[choice]
    return backbone_dtype if backbone_dtype in (torch.bfloat16, torch.float16) else None


def resolve_accumulator_dtype(settings: EngineSettings, backbone: Backbone) -> torch.dtype:
    """The projection matmul's dtype.

    ``auto`` picks bfloat16 for a float32 backbone on a CPU with bf16 dot products: there the
    per-layer update runs several times faster (benchmarks/results/accumulator_dtype_cpu.json)
    and the LayerNorm that follows keeps the answers those of float32
    (benchmarks/results/head_dtype_cpu.json, docs/server.md#head-dtype).
    """
    choice = settings.accumulator_dtype
    if choice != "auto":
        if choice == "float16" and backbone.device.type == "cpu":
            raise ValueError("accumulator_dtype float16 needs CUDA; on CPU use bfloat16")
        return _DTYPES[choice]
    head_dtype = resolve_head_dtype(settings.head_dtype, backbone.dtype)
    if head_dtype is not None:
        return head_dtype
    if backbone.dtype == torch.float32 and backbone.device.type == "cpu" and cpu_has_fast_bf16():
        return torch.bfloat16
    return backbone.dtype


def shipped_heads_for(info: BackboneInfo, quiet: bool = False) -> list[Path]:
    """The shipped head folders made for ``info``'s backbone; the others are logged, not loaded.

    Someone who brings their own backbone and names no heads folder wants it served, not a
    refusal because the heads trained for the packaged MiniLM do not fit it. Heads they name
    (``heads_dir``) are still checked strictly by load_head_set.
    """
    fitting: list[Path] = []
    left_out: list[str] = []
    for folder in head_folders([PRETRAINED_HEADS]):
        try:
            check_fingerprint(read_manifest(folder), info, str(folder))
        except HeadLoadError as exc:
            left_out.append(f"{folder.name} ({exc})")
            continue
        fitting.append(folder)
    if left_out and not quiet:
        log.warning(
            "backbone %s is not the one the shipped heads were trained on; left out: %s. "
            "Train heads for it (sidetask train --backbone ...) and pass --heads-dir.",
            info.name,
            "; ".join(left_out),
        )
    return fitting


def head_roots(settings: EngineSettings, info: BackboneInfo, quiet: bool = False) -> list[Path]:
    """The folders heads are loaded from: ``heads_dir``, else the shipped heads (those that
    fit a backbone the user brought)."""
    if settings.heads_dir is not None:
        return list(settings.heads_dir)
    if settings.backbone:
        return shipped_heads_for(info, quiet)
    return [PRETRAINED_HEADS]


def load_heads(settings: EngineSettings, backbone: Backbone) -> HeadSet:
    """Every head under the configured folders; by default the shipped heads that fit."""
    roots = head_roots(settings, backbone.info)
    head_dtype = resolve_head_dtype(settings.head_dtype, backbone.dtype)
    heads = load_head_set(
        roots,
        backbone.info,
        device=backbone.device,
        dtype=resolve_accumulator_dtype(settings, backbone),
        module_dtype=head_dtype,
        skip_failures=settings.skip_bad_heads,
        reserved=[backbone.info.main_task],
        max_plans=settings.plan_cache_size,
    )
    if not heads.heads:
        log.warning(
            "no trained heads found under %s: serving the main task (%s) only",
            ", ".join(map(str, roots)) or "the shipped heads",
            backbone.info.main_task,
        )
    return heads


def build_engine(settings: EngineSettings, observer: StageObserver | None = None) -> Engine:
    if settings.threads:
        torch.set_num_threads(settings.threads)
    backbone, dtype = load_backbone_with_dtype(settings)
    if settings.compile:
        backbone.compile_layers()
        log.info("backbone compiled and warmed up in %.1f s", backbone.compile_warmup())
    elif backbone.use_unpadded(settings.unpad):
        log.info("backbone runs without pad tokens (unpad)")
    heads = load_heads(settings, backbone)
    kernel = check_kernel(settings, backbone, heads)
    config = EngineConfig.from_settings(settings, kernel.path, backbone.device)
    return Engine(backbone, heads, config, observer, dtype)


def check_kernel(settings: EngineSettings, backbone: Backbone, heads: HeadSet) -> KernelChoice:
    """The accumulator path, proven on this device before the first request (CUDA only:
    elsewhere ``auto`` is the torch path without a check)."""
    choice = choose_kernel(settings.kernel, backbone.device, [(backbone.dtype, heads.dtype)])
    log.info("accumulator path: %s (%s)", choice.path, choice.reason)
    return choice
