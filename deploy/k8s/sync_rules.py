"""Write deploy/k8s/base/prometheusrule.yaml from deploy/prometheus/alerts.yml.

Why: compose/local Prometheus read alerts.yml; the Prometheus Operator reads a
PrometheusRule. One source of truth, copied by this script (a test checks they match).

    .venv/bin/python deploy/k8s/sync_rules.py
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

DEPLOY = Path(__file__).resolve().parent.parent
ALERTS = DEPLOY / "prometheus" / "alerts.yml"
TARGET = DEPLOY / "k8s" / "base" / "prometheusrule.yaml"
HEADER = """\
# The alerts of deploy/prometheus/alerts.yml for the Prometheus Operator (CRD
# monitoring.coreos.com). Generated: edit alerts.yml, then run
#   .venv/bin/python deploy/k8s/sync_rules.py
# (tests/deploy/test_k8s.py fails while the two differ).
"""


class _Dumper(yaml.SafeDumper):
    """Multi-line strings (PromQL) as literal blocks, readable in review."""


def _str(dumper: yaml.SafeDumper, data: str) -> Any:
    style = "|" if "\n" in data else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style=style)


_Dumper.add_representer(str, _str)


def prometheus_rule() -> dict[str, Any]:
    groups = yaml.safe_load(ALERTS.read_text())["groups"]
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {"name": "sidetask", "labels": {"app.kubernetes.io/name": "sidetask"}},
        "spec": {"groups": groups},
    }


def main() -> None:
    body = yaml.dump(prometheus_rule(), Dumper=_Dumper, sort_keys=False, width=100)
    TARGET.write_text(HEADER + body)


if __name__ == "__main__":
    main()
