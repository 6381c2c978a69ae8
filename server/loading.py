"""Build the engine from Settings: backbone, heads, device. Shared by `serve` and `analyze`."""

from __future__ import annotations

import logging

import torch

from heads.registry import HeadSet, load_head_set
from models.backbone import Backbone
from models.defaults import DEFAULT_BACKBONE_NAME, PRETRAINED_HEADS, default_backbone_path
from models.hardware import cpu_has_amx_bf16
from server.engine import Engine, EngineConfig, StageObserver
from server.settings import Settings

log = logging.getLogger(__name__)

_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def load_backbone(settings: Settings) -> Backbone:
    device = resolve_device(settings.device)
    dtype = _DTYPES[settings.dtype]
    if device.type == "cpu" and dtype == torch.float16:
        raise ValueError(
            "dtype float16 needs a CUDA device; on CPU use float32 or bfloat16 (fast with AMX)"
        )
    if settings.backbone:
        source, name = settings.backbone, None
    else:
        source, name = str(default_backbone_path()), DEFAULT_BACKBONE_NAME
    return Backbone.load(
        source, device=device, dtype=dtype, max_length=settings.max_length, name=name
    )


def resolve_head_dtype(choice: str, backbone: Backbone) -> torch.dtype | None:
    """The heads' compute dtype; None keeps float32 layers and a backbone-dtype accumulator.

    ``auto`` picks bfloat16 for a float32 backbone on a CPU with AMX, as inference runtimes
    do there: the heads' matmuls run several times faster and the shipped heads' answers
    keep their float32 dev metrics (docs/server.md). The backbone itself stays float32.
    """
    if choice != "auto":
        return _DTYPES[choice]
    on_cpu = backbone.device.type == "cpu" and backbone.dtype == torch.float32
    return torch.bfloat16 if on_cpu and cpu_has_amx_bf16() else None


def load_heads(settings: Settings, backbone: Backbone) -> HeadSet:
    """Every head under the configured folders (the shipped ones by default)."""
    roots = settings.heads_dir if settings.heads_dir is not None else [PRETRAINED_HEADS]
    head_dtype = resolve_head_dtype(settings.head_dtype, backbone)
    heads = load_head_set(
        roots,
        backbone.info,
        device=backbone.device,
        dtype=head_dtype or backbone.dtype,
        module_dtype=head_dtype,
        skip_failures=settings.skip_bad_heads,
        reserved=[backbone.info.main_task],
    )
    if not heads.heads:
        log.warning(
            "no trained heads found under %s: serving the main task (%s) only",
            ", ".join(map(str, roots)),
            backbone.info.main_task,
        )
    return heads


def engine_config(settings: Settings) -> EngineConfig:
    return EngineConfig(
        max_batch_tokens=settings.max_batch_tokens,
        max_batch_size=settings.max_batch_size,
        window_overlap=settings.window_overlap,
        kernel=settings.kernel,
        generate_max_length=settings.generate_max_length,
        generate_num_beams=settings.generate_num_beams,
    )


def build_engine(settings: Settings, observer: StageObserver | None = None) -> Engine:
    if settings.threads:
        torch.set_num_threads(settings.threads)
    backbone = load_backbone(settings)
    heads = load_heads(settings, backbone)
    return Engine(backbone, heads, engine_config(settings), observer)
