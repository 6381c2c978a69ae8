"""docker/local_build.py for tests (tests/deploy/conftest.py builds on it) and what the
Docker tests share: the built image's facts, waiting for a container's /readyz."""

from __future__ import annotations

import contextlib
import importlib.util
import time
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import httpx

ROOT = Path(__file__).resolve().parents[1]


def load_local_build() -> ModuleType:
    """docker/local_build.py as a module (docker/ is no package: the name would shadow the
    Docker SDK's)."""
    path = ROOT / "docker" / "local_build.py"
    spec = importlib.util.spec_from_file_location("sidetask_local_build", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@dataclass(frozen=True)
class Image:
    tag: str
    build_s: float  # this session's build (a fully cached one takes seconds)
    size_bytes: int


def wait_ready(url: str, container: str, docker: ModuleType, deadline_s: float) -> float:
    """Seconds until ``url`` answers 200; fails with the container's log if it exits or
    never does."""
    start = time.monotonic()
    while time.monotonic() - start < deadline_s:
        with contextlib.suppress(httpx.TransportError):
            if httpx.get(url, timeout=1).status_code == 200:
                return time.monotonic() - start
        running = docker.docker("inspect", "-f", "{{.State.Running}}", container).strip()
        assert running == "true", docker.docker("logs", container, check=False)
        time.sleep(0.1)
    raise AssertionError(f"{url} not ready:\n" + docker.docker("logs", container, check=False))
