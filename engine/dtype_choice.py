"""What ``dtype: auto`` resolves to: half precision only where a fidelity gate vouches for it.

bfloat16 (float16 on a GPU without bf16) runs the backbone several times faster on hardware
built for it, but it is the default only when a gate JSON shipped with the heads says that on
this kind of device, for exactly this backbone and these heads, the answers stay those of
float32 (every dev text's embedding cosine >= 0.999, >= 99.5 % of each sequence head's answers
identical, NER F1 within 0.3 points; written by ``sidetask bench dtype_gate --ship``,
docs/server.md#backbone-dtype). Anything else (another backbone, other or retrained heads, a
failed or missing gate, a CPU without native bf16) resolves to float32, and the reason is kept
so the start-up log and ``/tasks`` can say why.

Nothing here reads the environment: the gate folder and the hardware are passed in.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from heads.io import MANIFEST_FILE, HeadLoadError, read_manifest
from heads.registry import head_folders
from heads.shipped import PRETRAINED_HEADS
from heads.task_head import fingerprint_of
from models.backbone import BackboneInfo

log = logging.getLogger(__name__)

#: Where the shipped gates live: beside the heads they vouch for (package data, in the image).
SHIPPED_GATES = PRETRAINED_HEADS
WEIGHTS_FILE = "head.safetensors"
DTYPE_NAMES = {torch.float32: "float32", torch.float16: "float16", torch.bfloat16: "bfloat16"}


@dataclass(frozen=True)
class DtypeChoice:
    """The backbone dtype in use and why (``setting`` is what was asked: auto or a dtype)."""

    dtype: torch.dtype
    setting: str
    reason: str

    @property
    def name(self) -> str:
        return DTYPE_NAMES[self.dtype]

    @classmethod
    def as_loaded(cls, dtype: torch.dtype) -> DtypeChoice:
        """A backbone handed to the engine ready-made: its dtype, no gate consulted."""
        return cls(dtype, DTYPE_NAMES[dtype], "the backbone was given to the engine loaded")


@dataclass(frozen=True)
class Hardware:
    """What the device can do in half precision (measured by the caller, not read here)."""

    cpu_fast_bf16: bool = False
    cuda_bf16: bool = False


def gate_file(device_kind: str, gate_dir: Path = SHIPPED_GATES) -> Path:
    return gate_dir / f"dtype_gate_{device_kind}.json"


@functools.lru_cache(maxsize=64)
def _file_digest(path: str, mtime_ns: int, size: int) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def head_digest(folder: Path) -> str:
    """sha256 (16 hex) of a head's manifest and weights: any retraining changes it."""
    h = hashlib.sha256()
    for name in (MANIFEST_FILE, WEIGHTS_FILE):
        path = folder / name
        if path.is_file():
            st = path.stat()
            h.update(name.encode() + _file_digest(str(path), st.st_mtime_ns, st.st_size).encode())
    return h.hexdigest()[:16]


def heads_fingerprint(roots: Sequence[Path]) -> dict[str, str]:
    """Head name -> :func:`head_digest` for every head folder under ``roots``."""
    out: dict[str, str] = {}
    for folder in head_folders(roots):
        try:
            out[read_manifest(folder).name] = head_digest(folder)
        except HeadLoadError:
            out[folder.name] = "unreadable"
    return out


def fingerprint(info: BackboneInfo, head_roots: Sequence[Path]) -> dict[str, Any]:
    """What a gate is valid for: the backbone's fingerprint (as heads' manifests record it)
    and a digest of each head."""
    return {
        "backbone": fingerprint_of(info).model_dump(),
        "heads": heads_fingerprint(head_roots),
    }


def candidate(device: torch.device, hardware: Hardware) -> torch.dtype | None:
    """The half-precision dtype worth gating on ``device``; None where none pays."""
    if device.type == "cuda":
        return torch.bfloat16 if hardware.cuda_bf16 else torch.float16
    if device.type == "cpu" and hardware.cpu_fast_bf16:
        return torch.bfloat16
    return None


def read_gate(path: Path) -> dict[str, Any] | None:
    """The ``gate`` section of a gate JSON; None when missing or unreadable (logged)."""
    if not path.is_file():
        return None
    try:
        gate = json.loads(path.read_text(encoding="utf-8"))["gate"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        log.warning("dtype gate %s unreadable (%s): ignored", path, exc)
        return None
    return gate if isinstance(gate, dict) else None


def _mismatch(gate_fp: dict[str, Any], fp: dict[str, Any]) -> str | None:
    if gate_fp.get("backbone") != fp["backbone"]:
        return (
            f"the gate was measured on another backbone ({gate_fp.get('backbone')}; this one is "
            f"{fp['backbone']}): a backbone brought by the user has no gate"
        )
    if gate_fp.get("heads") != fp["heads"]:
        return (
            f"the heads differ from the gated ones (gated {gate_fp.get('heads')}, loaded "
            f"{fp['heads']}): other or retrained heads have no gate"
        )
    return None


def choose_dtype(
    setting: str,
    device: torch.device,
    hardware: Hardware,
    fp: dict[str, Any],
    gate_dir: Path = SHIPPED_GATES,
) -> DtypeChoice:
    """Resolve the ``dtype`` setting. An explicit dtype is kept (its checks live in the
    loader); ``auto`` is the device's half-precision candidate when the gate for this device
    kind, this candidate and exactly ``fp`` (:func:`fingerprint`) passed, else float32."""
    if setting != "auto":
        return DtypeChoice(getattr(torch, setting), setting, "set explicitly")
    half = candidate(device, hardware)
    if half is None:
        why = (
            "this CPU has no native bf16 (AVX512-BF16 or AMX): bfloat16 would be slower"
            if device.type == "cpu"
            else f"no half-precision candidate on {device.type}"
        )
        return DtypeChoice(torch.float32, setting, why)
    name = DTYPE_NAMES[half]
    path = gate_file(device.type, gate_dir)
    gate = read_gate(path)
    if gate is None:
        return DtypeChoice(torch.float32, setting, f"no {name} fidelity gate at {path}")
    if gate.get("candidate") != name:
        return DtypeChoice(
            torch.float32, setting, f"{path} gates {gate.get('candidate')}, not {name}"
        )
    if gate.get("device_kind") != device.type:
        return DtypeChoice(torch.float32, setting, f"{path} is for {gate.get('device_kind')}")
    layers = gate.get("head_layers", "float32")
    if layers != name:  # head_dtype auto runs the heads' layers in the backbone's half dtype
        return DtypeChoice(
            torch.float32,
            setting,
            f"{path} measured the heads' layers in {layers}, {name} with this version: "
            "re-run sidetask bench dtype_gate --ship",
        )
    mismatch = _mismatch(gate.get("fingerprint") or {}, fp)
    if mismatch is not None:
        return DtypeChoice(torch.float32, setting, mismatch)
    if gate.get("passed") is not True:
        failed = ", ".join(gate.get("failed", [])) or "not passed"
        return DtypeChoice(
            torch.float32, setting, f"the {name} fidelity gate ({path.name}) failed: {failed}"
        )
    return DtypeChoice(
        half,
        setting,
        f"the {name} fidelity gate passed on {gate.get('device_name', device.type)} "
        f"({path.name}: {gate.get('summary', 'all criteria met')})",
    )
