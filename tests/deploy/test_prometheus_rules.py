"""Alert rules and scrape config: promtool's own checks and rule unit tests.

promtool comes with Debian's prometheus package (apt-get install prometheus); without it
these tests skip, saying so.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
PROM = ROOT / "deploy" / "prometheus"
PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None, reason="promtool not installed (apt-get install prometheus)"
)


def _promtool(*args: str, cwd: Path = PROM) -> subprocess.CompletedProcess[str]:
    assert PROMTOOL is not None
    return subprocess.run(
        [PROMTOOL, *args], cwd=cwd, capture_output=True, text=True, timeout=60, check=False
    )


@needs_promtool
def test_alert_rules_pass_their_unit_tests() -> None:
    result = _promtool("test", "rules", "alerts_test.yml")
    assert result.returncode == 0, result.stdout + result.stderr


@needs_promtool
def test_rule_unit_tests_catch_a_broken_threshold(tmp_path: Path) -> None:
    """The unit tests can fail: an error alert that never fires is caught."""
    broken = (
        (PROM / "alerts.yml")
        .read_text()
        .replace(
            "sidetask:request_error_ratio:rate5m > 0.05",
            "sidetask:request_error_ratio:rate5m > 0.5",
        )
    )
    assert broken != (PROM / "alerts.yml").read_text()
    (tmp_path / "alerts.yml").write_text(broken)
    shutil.copy(PROM / "alerts_test.yml", tmp_path)
    result = _promtool("test", "rules", "alerts_test.yml", cwd=tmp_path)
    assert result.returncode != 0
    assert "SidetaskHighErrorRate" in result.stdout + result.stderr


@needs_promtool
def test_scrape_config_and_rules_are_valid() -> None:
    result = _promtool("check", "config", "prometheus.yml")
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_required_alert_exists() -> None:
    groups = yaml.safe_load((PROM / "alerts.yml").read_text())["groups"]
    alerts = {r["alert"] for g in groups for r in g["rules"] if "alert" in r}
    required = {
        "SidetaskHighErrorRate",
        "SidetaskHighLatencyP99",
        "SidetaskQueueSaturated",
        "SidetaskReplicaDown",
    }
    assert required <= alerts
    tested = set(re.findall(r"alertname: (\w+)", (PROM / "alerts_test.yml").read_text()))
    assert alerts <= tested, f"alerts without a unit test: {alerts - tested}"


def test_rules_only_use_metrics_the_server_exports() -> None:
    from server.metrics import Metrics

    exported = set(re.findall(r"^# TYPE (\w+) (\w+)", Metrics().scrape().decode(), re.M))
    names = {n for n, _ in exported}
    names |= {
        f"{n}_{s}" for n, t in exported if t == "histogram" for s in ("bucket", "sum", "count")
    }
    names |= {"up"}
    text = (PROM / "alerts.yml").read_text()
    used = set(re.findall(r"\b(sidetask_\w+|up)\{", text))
    assert used and used <= names, f"unknown metrics in alerts.yml: {used - names}"


def test_queue_alert_counts_the_servers_429_rejections() -> None:
    """reason="overloaded" in the alert is the code the server gives its 429 answers."""
    from server.errors import REJECTION_CODES, ErrorKind

    reasons = set(re.findall(r'reason="(\w+)"', (PROM / "alerts.yml").read_text()))
    assert reasons == {ErrorKind.OVERLOADED.code}
    assert ErrorKind.OVERLOADED.status == 429 and ErrorKind.OVERLOADED.code in REJECTION_CODES
