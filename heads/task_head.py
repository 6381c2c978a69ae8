"""A named, versioned head: layer mixer + head module + manifest."""

from __future__ import annotations

import torch
from torch import nn

from heads.kinds import HeadKind, kind_for
from heads.manifest import BackboneFingerprint, HeadManifest
from heads.mixing import LayerMixer
from models.accumulator import TaskProjection
from models.backbone import BackboneInfo


def fingerprint_of(info: BackboneInfo) -> BackboneFingerprint:
    return BackboneFingerprint(
        model_type=info.model_type,
        hidden_size=info.hidden_size,
        num_layers=info.num_layers,
        embedding_hash=info.fingerprint,
    )


def _set_temperature(module: nn.Module, temperature: float) -> None:
    """Every kind's module divides its logits by its ``temperature`` attribute."""
    setattr(module, "temperature", temperature)  # noqa: B010 (a plain attribute, not a tensor)


class TaskHead(nn.Module):
    """Everything one task adds to the backbone. It never calls the backbone itself."""

    def __init__(self, manifest: HeadManifest) -> None:
        super().__init__()
        self.manifest = manifest
        fp = manifest.backbone
        self.mixer = LayerMixer(
            num_states=fp.num_layers + 1,
            hidden_size=fp.hidden_size,
            k=manifest.k,
            alpha=manifest.alpha,
            cutoff=manifest.cutoff,
            mode=manifest.mixing,
            positions=manifest.positions,
            max_positions=manifest.max_positions,
        )
        if len(manifest.layer_logits) == fp.num_layers + 1:
            with torch.no_grad():
                self.mixer.layer_logits.copy_(torch.tensor(manifest.layer_logits))
        self.kind: HeadKind = kind_for(manifest.kind)
        # the kind's module on F_t (heads/kinds/); typed loosely: each kind checks its own
        self.head: nn.Module = self.kind.build(manifest)
        _set_temperature(self.head, manifest.temperature)

    def set_temperature(self, temperature: float) -> None:
        """Calibrate: the head's logits are divided by ``temperature`` (kept in the manifest)."""
        self.manifest = self.manifest.model_copy(update={"temperature": float(temperature)})
        _set_temperature(self.head, float(temperature))

    @property
    def name(self) -> str:
        return self.manifest.name

    @property
    def layers_dtype(self) -> torch.dtype:
        """The dtype the head's own layers compute in (the mixer stays float32)."""
        return next(self.head.parameters()).dtype

    @property
    def case_features(self) -> bool:
        """Whether the head's forward needs case ids (``heads/casing.py``) with the features."""
        return self.manifest.case_features

    @property
    def labels(self) -> list[str]:
        return self.manifest.labels

    def projection(self) -> TaskProjection:
        return self.mixer.export(self.name)

    def sync_manifest(self) -> HeadManifest:
        """Copy the learned layer logits into the manifest (before saving)."""
        logits = [float(x) for x in self.mixer.layer_logits.detach().cpu()]
        self.manifest = self.manifest.model_copy(update={"layer_logits": logits})
        return self.manifest

    def parameter_count(self) -> int:
        return sum(p.numel() for p in self.parameters())
