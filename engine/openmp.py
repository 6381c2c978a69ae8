"""OpenMP's wait policy, set from ``--omp-wait-policy`` / SIDETASK_OMP_WAIT_POLICY before torch
is first imported.

torch's OpenMP runtime reads ``OMP_WAIT_POLICY`` once, when torch loads it, so the setting
(server/settings.py ``omp_wait_policy``) has to reach the environment before any module that
imports torch: importing the ``cli`` package (the ``sidetask`` command) does that. Why it matters
(docs/server.md#openmp-wait-policy): left to libgomp's default, a thread that finished its
share of an op spins before it sleeps. On cores of its own that is the fastest choice, but
with as many torch threads as cores and one other busy process on the machine (another
replica, a training job) every parallel region waits for a descheduled thread; ``passive``
threads sleep at once, which costs latency on an idle machine and saves the server on a
shared one.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, MutableMapping, Sequence

FLAG = "--omp-wait-policy"
ENV = "SIDETASK_OMP_WAIT_POLICY"
#: Setting value -> OMP_WAIT_POLICY; "default" leaves the variable (and libgomp) alone.
POLICIES = {"active": "ACTIVE", "passive": "PASSIVE"}


def requested_policy(argv: Sequence[str], environ: Mapping[str, str]) -> str | None:
    """The setting as the command line will see it: the flag, else the SIDETASK_ variable."""
    for i, word in enumerate(argv):
        if word == FLAG and i + 1 < len(argv):
            return argv[i + 1].strip().lower()
        if word.startswith(FLAG + "="):
            return word.split("=", 1)[1].strip().lower()
    value = environ.get(ENV, "").strip().lower()
    return value or None


def apply_wait_policy(
    argv: Sequence[str] | None = None, environ: MutableMapping[str, str] = os.environ
) -> str | None:
    """Export OMP_WAIT_POLICY for the requested policy; returns what was exported.

    Nothing is exported once torch is imported (its OpenMP runtime has read the environment
    already), for ``default``, or for a value the Settings will refuse with a clear error.
    """
    if "torch" in sys.modules:
        return None
    policy = POLICIES.get(requested_policy(sys.argv[1:] if argv is None else argv, environ) or "")
    if policy is not None:
        environ["OMP_WAIT_POLICY"] = policy
    return policy


def wait_policy_in_effect(environ: Mapping[str, str] = os.environ) -> str:
    """What the OpenMP runtime was told (for the start-up log)."""
    return environ.get("OMP_WAIT_POLICY", "") or "default (libgomp: spin, then sleep)"


def wait_policy_mismatch(setting: str, environ: Mapping[str, str] = os.environ) -> str | None:
    """Why the ``omp_wait_policy`` setting is not what the runtime uses, or None when it is
    (Settings built in Python after torch loaded never reach the environment)."""
    wanted = POLICIES.get(setting)
    if wanted is None or environ.get("OMP_WAIT_POLICY", "").upper() == wanted:
        return None
    return (
        f"omp_wait_policy={setting} is not in effect (OMP_WAIT_POLICY="
        f"{environ.get('OMP_WAIT_POLICY') or 'unset'}): OpenMP reads it when torch loads; "
        f"start through the sidetask command or export OMP_WAIT_POLICY={wanted}"
    )
