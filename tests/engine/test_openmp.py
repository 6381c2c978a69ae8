"""--omp-wait-policy / SIDETASK_OMP_WAIT_POLICY reach OpenMP: exported before torch loads."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from engine.openmp import apply_wait_policy, requested_policy, wait_policy_mismatch

PROBE = (
    "import sys; sys.argv = ['sidetask'] + sys.argv[1:]; import cli, os; "
    "print(os.environ.get('OMP_WAIT_POLICY'))"
)


def _exported(*argv: str, **env: str) -> str:
    """OMP_WAIT_POLICY after importing the command's package in a fresh interpreter."""
    environ = {
        k: v
        for k, v in os.environ.items()
        if k not in ("OMP_WAIT_POLICY", "SIDETASK_OMP_WAIT_POLICY")
    } | env
    out = subprocess.run(
        [sys.executable, "-c", PROBE, *argv],
        env=environ,
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.strip()


def test_the_flag_sets_the_policy_before_torch_loads() -> None:
    assert _exported("serve", "--omp-wait-policy", "passive") == "PASSIVE"
    assert _exported("analyze", "--omp-wait-policy=active", "text") == "ACTIVE"


def test_the_environment_variable_sets_it_and_the_flag_wins() -> None:
    assert _exported("serve", SIDETASK_OMP_WAIT_POLICY="passive") == "PASSIVE"
    assert (
        _exported("serve", "--omp-wait-policy", "active", SIDETASK_OMP_WAIT_POLICY="passive")
        == "ACTIVE"
    )


def test_default_leaves_openmp_alone() -> None:
    assert _exported("serve") == "None"
    assert _exported("serve", OMP_WAIT_POLICY="ACTIVE") == "ACTIVE"  # the user's own export


def test_requested_policy_reads_flag_then_environment() -> None:
    assert requested_policy(["serve", "--omp-wait-policy", "Passive"], {}) == "passive"
    assert requested_policy(["serve"], {"SIDETASK_OMP_WAIT_POLICY": "active"}) == "active"
    assert requested_policy(["serve"], {}) is None


def test_nothing_is_exported_once_torch_is_loaded() -> None:
    import torch  # noqa: F401  (as in any process that imported torch first)

    environ: dict[str, str] = {}
    assert apply_wait_policy(["serve", "--omp-wait-policy", "passive"], environ) is None
    assert environ == {}


@pytest.mark.parametrize(
    ("setting", "environ", "warns"),
    [
        ("default", {}, False),
        ("passive", {"OMP_WAIT_POLICY": "PASSIVE"}, False),
        ("passive", {}, True),
        ("active", {"OMP_WAIT_POLICY": "PASSIVE"}, True),
    ],
)
def test_a_setting_that_did_not_reach_openmp_is_reported(
    setting: str, environ: dict[str, str], warns: bool
) -> None:
    message = wait_policy_mismatch(setting, environ)
    assert (message is not None) == warns
    if message:
        assert "OMP_WAIT_POLICY" in message and "torch loads" in message
