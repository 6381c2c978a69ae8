"""Fake dtype fidelity gates (the shape ``sidetask bench dtype_gate`` writes) for tests."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from engine.dtype_choice import gate_file


def write_gate(
    folder: Path,
    fp: dict[str, Any],
    passed: bool = True,
    kind: str = "cpu",
    candidate: str = "bfloat16",
    head_layers: str | None = None,
) -> Path:
    """A gate JSON for ``fp`` (backbone + heads fingerprint) in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    gate = {
        "device_kind": kind,
        "device_name": "Test CPU",
        "candidate": candidate,
        "head_layers": candidate if head_layers is None else head_layers,
        "fingerprint": fp,
        "passed": passed,
        "failed": [] if passed else ["embedding_cosine"],
    }
    path = gate_file(kind, folder)
    path.write_text(json.dumps({"gate": gate}))
    return path
