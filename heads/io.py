"""Save and load heads: safetensors for tensors, a JSON manifest for the rest. Never pickle."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from pydantic import ValidationError
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from heads.manifest import MANIFEST_FILE, WEIGHTS_FILE, HeadManifest
from heads.task_head import TaskHead
from models.backbone import BackboneInfo


class HeadLoadError(ValueError):
    """A head folder is missing, malformed or made for another backbone."""


def save_head(head: TaskHead, folder: str | Path) -> Path:
    """Write ``head.safetensors`` and ``manifest.json`` into ``folder``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    manifest = head.sync_manifest()
    tensors = {k: v.detach().cpu().contiguous() for k, v in head.state_dict().items()}
    save_file(tensors, str(folder / WEIGHTS_FILE), metadata={"name": manifest.name})
    (folder / MANIFEST_FILE).write_text(manifest.model_dump_json(indent=2) + "\n")
    return folder


def read_manifest(folder: str | Path) -> HeadManifest:
    """Parse and schema-check a head's manifest."""
    path = Path(folder) / MANIFEST_FILE
    if not path.is_file():
        raise HeadLoadError(f"{folder}: no {MANIFEST_FILE}")
    try:
        return HeadManifest.model_validate(json.loads(path.read_text(encoding="utf-8")))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise HeadLoadError(f"{path}: not valid JSON ({exc})") from exc
    except ValidationError as exc:
        raise HeadLoadError(f"{path}: invalid manifest: {exc}") from exc


def check_fingerprint(manifest: HeadManifest, info: BackboneInfo, where: str) -> None:
    """Refuse a head trained on another backbone, saying which property differs."""
    fp = manifest.backbone
    expected = {
        "model_type": info.model_type,
        "hidden_size": info.hidden_size,
        "num_layers": info.num_layers,
        "embedding_hash": info.fingerprint,
    }
    for field, value in expected.items():
        got = getattr(fp, field)
        if got != value:
            raise HeadLoadError(
                f"{where}: head {manifest.name!r} was trained on another backbone "
                f"({field} {got!r}, this backbone has {value!r})"
            )


def check_structure(manifest: HeadManifest, info: BackboneInfo | None, where: str) -> None:
    """Refuse what the schema lets through but the head cannot use: attention heads that do
    not divide k (the layer cannot be built), layer logits for another depth (they would be
    silently replaced by fresh ones), learned positions shorter than the backbone's windows
    (every request would fail)."""
    name = manifest.name
    if manifest.k % manifest.num_attention_heads:
        raise HeadLoadError(
            f"{where}: head {name!r} has k={manifest.k}, not a multiple of its "
            f"num_attention_heads={manifest.num_attention_heads}"
        )
    states = manifest.backbone.num_layers + 1
    if len(manifest.layer_logits) != states:
        raise HeadLoadError(
            f"{where}: head {name!r} has {len(manifest.layer_logits)} layer_logits, its "
            f"backbone has {states} hidden states"
        )
    if info is not None and manifest.positions and manifest.max_positions < info.max_length:
        raise HeadLoadError(
            f"{where}: head {name!r} learned positions for {manifest.max_positions} tokens, "
            f"but this backbone's windows hold {info.max_length} (serve with --max-length "
            f"{manifest.max_positions} or retrain the head)"
        )


def load_head(
    folder: str | Path, info: BackboneInfo | None = None, device: str | torch.device = "cpu"
) -> TaskHead:
    """Load a head folder; with ``info``, check it matches the running backbone.

    Every way a head can fail to load or build raises :class:`HeadLoadError`, so a bad head
    is skipped (``skip_bad_heads``) or refused (422 on reload), never a crash.
    """
    folder = Path(folder)
    manifest = read_manifest(folder)
    if info is not None:
        check_fingerprint(manifest, info, str(folder))
    check_structure(manifest, info, str(folder))
    weights = folder / WEIGHTS_FILE
    if not weights.is_file():
        raise HeadLoadError(f"{folder}: no {WEIGHTS_FILE}")
    try:
        tensors = load_file(str(weights))
    except (SafetensorError, OSError, ValueError) as exc:
        raise HeadLoadError(f"{weights}: corrupt safetensors file ({exc})") from exc
    try:
        head = TaskHead(manifest)
    except Exception as exc:  # a module constructor's assert or ValueError: still a bad head
        raise HeadLoadError(
            f"{folder}: cannot build head {manifest.name!r} ({type(exc).__name__}: {exc})"
        ) from exc
    try:
        head.load_state_dict(tensors, strict=True)
    except RuntimeError as exc:
        raise HeadLoadError(f"{weights}: tensors do not match the manifest ({exc})") from exc
    return head.to(device).eval()
