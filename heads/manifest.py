"""The JSON manifest that travels with every head's safetensors file."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from heads.kinds import KIND_OPTIONS, KINDS, kind_for, kinds_accepting

HEAD_NAME_PATTERN = r"^[a-z][a-z0-9_\-]{0,63}$"
MANIFEST_FILE = "manifest.json"
WEIGHTS_FILE = "head.safetensors"
FORMAT_VERSION = 1


class BackboneFingerprint(BaseModel):
    """Identifies the backbone a head was trained on; a mismatch refuses the load."""

    model_config = ConfigDict(extra="forbid")

    model_type: str
    hidden_size: int = Field(gt=0)
    num_layers: int = Field(gt=0)
    embedding_hash: str = Field(min_length=8, max_length=64)


class HeadManifest(BaseModel):
    """Everything needed to rebuild a head and to tell users what it is."""

    model_config = ConfigDict(extra="forbid")

    format_version: int = FORMAT_VERSION
    name: str = Field(pattern=HEAD_NAME_PATTERN)
    version: str = Field(default="1", min_length=1, max_length=64)
    kind: str = Field(
        description="The head kind (heads/kinds/): " + ", ".join(KINDS), examples=list(KINDS)
    )
    labels: list[str] = Field(min_length=2)
    k: int = Field(gt=0, le=4096)
    alpha: float = Field(default=64.0, gt=0)
    cutoff: float = Field(default=0.0, ge=0, lt=1)
    mixing: Literal["adaptive", "last", "uniform"] = "adaptive"
    layer_logits: list[float]
    positions: bool = False
    max_positions: int = Field(default=512, gt=0)
    num_attention_heads: int = Field(default=4, gt=0)
    ff_dim: int = Field(default=2048, gt=0)
    dropout: float = Field(default=0.1, ge=0, lt=1)
    # Sequence heads only: how attended token features become one vector per text.
    pooling: Literal["mean", "max"] = "mean"
    # Sequence heads only: the layer over F_t before pooling, one self-attention layer (the
    # method's) or a pre-norm transformer encoder layer with a feed-forward of ff_dim.
    block: Literal["attention", "encoder"] = "attention"
    # Token heads only: add a learned embedding of each token's casing class (heads/casing.py).
    case_features: bool = False
    # Multi-label heads only: a label is in the answer when its sigmoid score reaches this.
    threshold: float = Field(default=0.5, gt=0, lt=1)
    # The head's logits are divided by this before the softmax: fitted on the validation
    # split after training (train/calibration.py) so that scores are calibrated.
    temperature: float = Field(default=1.0, gt=0, le=100)
    backbone: BackboneFingerprint
    training: dict[str, Any] = Field(default_factory=dict)
    metrics: dict[str, float] = Field(default_factory=dict)
    description: str = ""

    @field_validator("kind")
    @classmethod
    def _known_kind(cls, kind: str) -> str:
        kind_for(kind)
        return kind

    @model_validator(mode="after")
    def _options_fit_the_kind(self) -> HeadManifest:
        """Options of other kinds stay at their defaults (e.g. case_features: token only)."""
        kind = kind_for(self.kind)
        for option, default in KIND_OPTIONS.items():
            if option not in kind.options and getattr(self, option) != default:
                owners = " or ".join(kinds_accepting(option))
                raise ValueError(f"{option} is for {owners} heads only, not {kind.name}")
        kind.check(self)
        return self
