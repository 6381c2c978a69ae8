"""Running the real `sidetask` command in tests: `serving(...)` starts `sidetask serve` on a
free loopback port and yields its base URL once /readyz is 200; `sidetask(...)` runs any
other subcommand to completion."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def command() -> list[str]:
    """The installed console script, or the module when the script is not on disk."""
    script = Path(sys.executable).with_name("sidetask")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "cli.main"]


def sidetask(*args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    return subprocess.run(
        [*command(), *args], env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


@contextlib.contextmanager
def serving(log: Path, *args: str, **env: str) -> Iterator[str]:
    """`sidetask serve ARGS` (env: extra variables); stopped with SIGTERM on exit."""
    port = free_port()
    environ = {**os.environ, "HF_HUB_OFFLINE": "1", "SIDETASK_THREADS": "1", **env}
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [*command(), "serve", "--port", str(port), *args],
            env=environ,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            if proc.poll() is not None:
                raise AssertionError(f"server exited {proc.returncode}:\n{log.read_text()}")
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(base + "/readyz", timeout=1).status_code == 200:
                    break
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:  # pragma: no cover - a hung drain
            proc.kill()
            proc.wait()
