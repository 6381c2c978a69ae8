"""Session fixtures for the tests that drive Docker for real (docker/local_build.py).

The engine is started once and stopped at the end only if this session started it; the
CPU image is built once per session (its layers are cached by the engine across runs, so a
second run rebuilds nothing). Without an engine that can start, every test using these
fixtures skips with the reason.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from types import ModuleType

import pytest
from docker_harness import Image, load_local_build


@pytest.fixture(scope="session")
def local_build() -> ModuleType:
    return load_local_build()


@pytest.fixture(scope="session")
def docker_engine(local_build: ModuleType) -> Iterator[ModuleType]:
    try:
        started = local_build.ensure_engine()
    except local_build.Unavailable as why:
        pytest.skip(f"no Docker engine: {why}")
    yield local_build
    if started:
        local_build.stop_engine()


@pytest.fixture(scope="session")
def cpu_image(docker_engine: ModuleType) -> Image:
    """sidetask:cpu built from the working tree, once per session."""
    start = time.monotonic()
    try:
        docker_engine.build_cpu_image(docker_engine.CPU_IMAGE)
    except docker_engine.Unavailable as why:  # e.g. no debootstrap for the base image
        pytest.skip(f"cannot build the image here: {why}")
    size = int(docker_engine.docker("image", "inspect", "-f", "{{.Size}}", docker_engine.CPU_IMAGE))
    return Image(docker_engine.CPU_IMAGE, time.monotonic() - start, size)
