"""`make test` on a fresh machine runs what .ci/run runs, and shows every skip's reason."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _rule(target: str) -> tuple[list[str], list[str]]:
    """(prerequisites, recipe lines) of a Makefile target."""
    text = (ROOT / "Makefile").read_text()
    match = re.search(rf"^{target}:([^\n]*)\n((?:\t[^\n]*\n)*)", text, re.M)
    assert match, target
    return match[1].split(), [line.strip() for line in match[2].splitlines()]


def test_make_test_prints_skip_reasons() -> None:
    _, recipe = _rule("test")
    (pytest_line,) = [line for line in recipe if "pytest" in line]
    assert "-rs" in pytest_line.split() or re.search(r"-r\w*s", pytest_line)


def test_make_test_installs_the_system_tools_first() -> None:
    prerequisites, _ = _rule("test")
    assert "tools" in prerequisites
    _, recipe = _rule("tools")
    script = ROOT / ".ci" / "system_tools.sh"
    assert any(str(script.relative_to(ROOT)) in line for line in recipe)
    text = script.read_text()
    for tool in ("nginx", "promtool", "hey"):
        assert f"command -v {tool}" in text
    assert subprocess.run(["bash", "-n", str(script)], check=False).returncode == 0
    # CI runs the same: make test, no second list of tools to drift
    assert "apt-get" not in (ROOT / ".ci" / "run").read_text()
