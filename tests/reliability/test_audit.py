"""The dependency audit run by `make lint`: fails on a known vulnerability, warns (exit 0)
when PyPI is unreachable, and never reports an audit that looked nothing up as a pass."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

AUDIT = Path(__file__).resolve().parents[2] / ".ci" / "audit.py"
OFFLINE = (
    "Traceback (most recent call last):\n  ...\nrequests.exceptions.ProxyError: "
    "HTTPSConnectionPool(host='pypi.org', port=443): Max retries exceeded with url: "
    "/pypi/anyio/4.16.0/json (Caused by NewConnectionError('Failed to establish a new "
    "connection: [Errno 111] Connection refused'))\n"
)


@pytest.fixture(scope="module")
def audit() -> ModuleType:
    spec = importlib.util.spec_from_file_location("ci_audit", AUDIT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["ci_audit"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def _pip_audit_json(*deps: dict[str, Any]) -> str:
    return json.dumps({"dependencies": list(deps), "fixes": []})


def _skipped(name: str, version: str) -> dict[str, Any]:
    reason = f"Dependency not found on PyPI and could not be audited: {name} ({version})"
    return {"name": name, "skip_reason": reason}


def _fake_run(monkeypatch: pytest.MonkeyPatch, rc: int, stdout: str, stderr: str = "") -> None:
    def run(cmd: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        assert "-s" in cmd and "pypi" in cmd
        return subprocess.CompletedProcess(cmd, rc, stdout, stderr)

    monkeypatch.setattr(subprocess, "run", run)


def _no_fetch(name: str) -> dict[str, Any]:
    raise AssertionError("no fallback lookup expected")


def test_a_known_vulnerability_fails(
    audit: ModuleType, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    vuln = {"id": "PYSEC-2099-1", "fix_versions": ["2.0.1"], "aliases": ["CVE-2099-1"]}
    report = _pip_audit_json(
        {"name": "ok-pkg", "version": "1.0", "vulns": []},
        {"name": "bad-pkg", "version": "2.0.0", "vulns": [vuln]},
    )
    _fake_run(monkeypatch, 1, report)
    assert audit.main([], fetch=_no_fetch) == 1
    out = capsys.readouterr().out
    assert "bad-pkg 2.0.0 PYSEC-2099-1 (CVE-2099-1) fixed in: 2.0.1" in out


def test_unreachable_pypi_warns_without_failing(
    audit: ModuleType, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _fake_run(monkeypatch, 1, "", OFFLINE)
    assert audit.main([], fetch=_no_fetch) == 0
    assert "WARNING: PyPI unreachable, nothing audited" in capsys.readouterr().out
    assert audit.main(["--strict"], fetch=_no_fetch) == 2


def test_another_pip_audit_failure_is_not_hidden(
    audit: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fake_run(monkeypatch, 2, "", "pip-audit: error: unrecognized arguments: --bogus")
    with pytest.raises(RuntimeError, match="unrecognized arguments"):
        audit.main([], fetch=_no_fetch)


def test_skipped_packages_are_audited_from_the_project_json(
    audit: ModuleType, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """pip-audit's "not found, No known vulnerabilities found" audited nothing: the fallback
    looks each package up and flags what it still cannot vouch for."""
    _fake_run(
        monkeypatch,
        0,
        _pip_audit_json(
            _skipped("clean", "1.2.0"),
            _skipped("torch", "2.13.0+cpu"),
            _skipped("old", "0.9"),
            {"name": "sidetask", "skip_reason": "distribution marked as editable"},
        ),
    )
    projects = {
        "clean": {"info": {"version": "1.2.0"}, "vulnerabilities": []},
        "torch": {"info": {"version": "2.13.0"}, "vulnerabilities": []},
        "old": {"info": {"version": "1.0"}, "vulnerabilities": [{"id": "GHSA-x"}]},
    }
    assert audit.main([], fetch=projects.__getitem__) == 0
    out = capsys.readouterr().out
    assert "2 packages audited" in out
    assert "1 packages not audited: old" in out and "0.9 in use" in out
    assert audit.main(["--strict"], fetch=projects.__getitem__) == 2

    projects["clean"]["vulnerabilities"] = [
        {"id": "GHSA-live", "aliases": ["CVE-2099-2"], "fixed_in": ["1.2.1"]},
        {"id": "GHSA-gone", "withdrawn": "2099-01-01"},
    ]
    assert audit.main([], fetch=projects.__getitem__) == 1
    out = capsys.readouterr().out
    assert "clean 1.2.0 GHSA-live" in out and "GHSA-gone" not in out


def test_unreachable_fallback_warns_without_failing(
    audit: ModuleType, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _fake_run(monkeypatch, 0, _pip_audit_json(_skipped("a", "1"), _skipped("b", "2")))

    def offline(name: str) -> dict[str, Any]:
        raise ConnectionError("[Errno -3] Temporary failure in name resolution")

    assert audit.main([], fetch=offline) == 0
    assert "PyPI unreachable" in capsys.readouterr().out


def test_requirements_mode_audits_pins_without_installing(audit: ModuleType) -> None:
    cmd = audit.pip_audit_command([Path("docker/constraints.txt")])
    assert cmd[-2:] == ["--no-deps", "--disable-pip"] and "docker/constraints.txt" in cmd
    assert "--skip-editable" in audit.pip_audit_command([])
