"""The command sets OpenMP's wait policy before torch loads, and a user's own value wins."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

PROBE = (
    "import os, sys; from cli.runtime_env import apply_runtime_defaults; "
    "late = apply_runtime_defaults({}); "  # torch is loaded by now: too late to set anything
    "print(os.environ.get('OMP_WAIT_POLICY'), 'torch' in sys.modules, late)"
)


def _probe(**env: str) -> list[str]:
    environ = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"} | env
    out = subprocess.run(
        [sys.executable, "-c", "import cli.main; " + PROBE],
        env=environ,
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.split()


def test_the_command_makes_openmp_threads_sleep_between_ops() -> None:
    assert _probe() == ["PASSIVE", "True", "{}"]


@pytest.mark.parametrize("policy", ["ACTIVE", "PASSIVE"])
def test_a_policy_the_user_exported_is_kept(policy: str) -> None:
    assert _probe(OMP_WAIT_POLICY=policy)[0] == policy
