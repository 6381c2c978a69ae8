"""Known-vulnerability audit of the dependencies (`make audit`, run by `make lint`).

pip-audit checks each package against the PyPI vulnerability service. Outcomes:

- a known vulnerability in an audited package: listed, exit 1 (this fails the lint);
- PyPI cannot be reached (offline CI, no DNS, proxy down): a warning, exit 0 -- an
  unreachable service says nothing about the code, and must not break an offline build;
- packages pip-audit could not look up: some PyPI front ends (the one this project was
  built behind among them) serve the project JSON (/pypi/<name>/json) but not the
  per-release JSON pip-audit asks for, so pip-audit reports every package as "not found"
  and then "No known vulnerabilities found" -- a pass that audited nothing. Those packages
  are looked up in the project JSON instead, whose ``vulnerabilities`` apply to the latest
  release: used when the audited version is that release; any package still unaudited
  is named in a warning. ``--strict`` makes an incomplete or unreachable audit exit 2.

    .venv/bin/python .ci/audit.py                                  # the installed venv
    .venv/bin/python .ci/audit.py -r docker/constraints.txt        # the image's pins
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

UNREACHABLE = re.compile(
    r"ConnectionError|ProxyError|ConnectTimeout|ReadTimeout|Max retries exceeded|"
    r"Failed to establish a new connection|Name or service not known|"
    r"Temporary failure in name resolution|Network is unreachable|could not reach",
    re.IGNORECASE,
)
VERSION_IN_REASON = re.compile(r"\(([^()\s]+)\)\s*$")
PYPI = "https://pypi.org/pypi/{name}/json"
Fetch = Callable[[str], dict[str, Any]]


@dataclass
class Report:
    vulns: list[dict[str, str]] = field(default_factory=list)
    audited: list[str] = field(default_factory=list)
    unaudited: dict[str, str] = field(default_factory=dict)  # name -> why
    unreachable: str | None = None


def pip_audit_command(requirements: Sequence[Path]) -> list[str]:
    exe = Path(sys.executable).with_name("pip-audit")
    cmd = [str(exe) if exe.exists() else "pip-audit", "-s", "pypi", "-f", "json"]
    cmd += ["--progress-spinner", "off"]
    if requirements:
        for r in requirements:
            cmd += ["-r", str(r)]
        return [*cmd, "--no-deps", "--disable-pip"]
    return [*cmd, "--skip-editable"]


def read_pip_audit(returncode: int, stdout: str, stderr: str, report: Report) -> dict[str, str]:
    """Fill ``report`` from pip-audit's JSON; return the skipped packages (name -> version)."""
    try:
        data = json.loads(stdout) if stdout.strip() else None
    except json.JSONDecodeError:
        data = None
    if data is None:
        if UNREACHABLE.search(stderr):
            report.unreachable = _last_line(stderr)
            return {}
        raise RuntimeError(f"pip-audit failed (exit {returncode}):\n{stderr[-2000:]}")
    skipped: dict[str, str] = {}
    for dep in data.get("dependencies", []):
        name, reason = dep["name"], dep.get("skip_reason")
        if reason is None:
            report.audited.append(name)
            for v in dep.get("vulns", []):
                report.vulns.append(_vuln(name, dep.get("version", "?"), v))
        elif "editable" in reason:
            continue  # this project itself
        elif (m := VERSION_IN_REASON.search(reason)) is not None:
            skipped[name] = m.group(1)
        else:
            report.unaudited[name] = reason
    return skipped


def fallback(skipped: dict[str, str], fetch: Fetch, report: Report) -> None:
    """Audit what pip-audit skipped from the project JSON where it describes that version."""

    def one(item: tuple[str, str]) -> tuple[str, str, dict[str, Any] | Exception]:
        name, version = item
        try:
            return name, version, fetch(name)
        except Exception as exc:  # reported per package below
            return name, version, exc

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(one, sorted(skipped.items())))
    errors = [r for r in results if isinstance(r[2], Exception)]
    if (
        errors
        and len(errors) == len(results)
        and all(UNREACHABLE.search(repr(e)) for *_, e in errors)
    ):
        report.unreachable = repr(errors[0][2])
        return
    for name, version, answer in results:
        if isinstance(answer, Exception):
            report.unaudited[name] = f"lookup failed: {answer!r}"
            continue
        latest = str(answer.get("info", {}).get("version", ""))
        if _public(latest) != _public(version):
            report.unaudited[name] = f"{version} in use; PyPI's advisories cover only {latest}"
            continue
        report.audited.append(name)
        for v in answer.get("vulnerabilities") or []:
            if not v.get("withdrawn"):
                report.vulns.append(_vuln(name, version, v))


def fetch_project(name: str) -> dict[str, Any]:
    import httpx

    r = httpx.get(PYPI.format(name=name), timeout=20, follow_redirects=True)
    r.raise_for_status()
    data: dict[str, Any] = r.json()
    return data


def _vuln(name: str, version: str, v: dict[str, Any]) -> dict[str, str]:
    fixed = v.get("fix_versions") or v.get("fixed_in") or []
    return {
        "package": name,
        "version": version,
        "id": str(v.get("id", "?")),
        "aliases": ",".join(v.get("aliases") or []),
        "fixed_in": ",".join(fixed) or "no fix released",
    }


def _public(version: str) -> str:
    return version.split("+", 1)[0]  # 2.13.0+cpu is the 2.13.0 release


def _last_line(text: str) -> str:
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    return lines[-1][:300] if lines else "no output"


def verdict(report: Report, strict: bool) -> int:
    """Print the outcome; exit status 1 on a vulnerability, 2 on --strict gaps, else 0."""
    if report.unreachable:
        print(f"audit: WARNING: PyPI unreachable, nothing audited ({report.unreachable})")
        return 2 if strict else 0
    print(f"audit: {len(report.audited)} packages audited against the PyPI advisory data")
    if report.unaudited:
        names = ", ".join(sorted(report.unaudited))
        print(f"audit: WARNING: {len(report.unaudited)} packages not audited: {names}")
        for name, why in sorted(report.unaudited.items()):
            print(f"audit:   {name}: {why}")
    if report.vulns:
        print(f"audit: {len(report.vulns)} known vulnerabilities:")
        for v in report.vulns:
            print(f"audit:   {v['package']} {v['version']} {v['id']} ({v['aliases']}) "
                  f"fixed in: {v['fixed_in']}")  # fmt: skip
        return 1
    print("audit: no known vulnerabilities in the audited packages")
    return 2 if strict and report.unaudited else 0


def main(argv: Sequence[str] | None = None, fetch: Fetch = fetch_project) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("-r", "--requirements", type=Path, action="append", default=[])
    p.add_argument("--strict", action="store_true", help="Exit 2 on unreachable/incomplete.")
    args = p.parse_args(argv)
    proc = subprocess.run(
        pip_audit_command(args.requirements), capture_output=True, text=True, check=False
    )
    report = Report()
    skipped = read_pip_audit(proc.returncode, proc.stdout, proc.stderr, report)
    if skipped and report.unreachable is None:
        fallback(skipped, fetch, report)
    return verdict(report, args.strict)


if __name__ == "__main__":
    raise SystemExit(main())
