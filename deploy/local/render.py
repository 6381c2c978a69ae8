"""Render the project's nginx and Prometheus configs (deploy/) for loopback ports.

Only addresses, paths and intervals change; every directive that matters (retries,
timeouts, body limit, passive health checks, rules) is the file from deploy/ itself, so
the local topology exercises what compose and users deploy. Standard library + PyYAML.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

DEPLOY = Path(__file__).resolve().parent.parent
NGINX_SITE = DEPLOY / "nginx" / "sidetask.conf"
NGINX_UPSTREAM = DEPLOY / "nginx" / "upstream.conf"
PROMETHEUS_CONFIG = DEPLOY / "prometheus" / "prometheus.yml"
ALERTS = DEPLOY / "prometheus" / "alerts.yml"

UPSTREAM_INCLUDE = "include /etc/nginx/sidetask/upstream.conf;"
LISTEN = "listen 8080;"
LOG_DIR = "/var/log/nginx/"


def _replace_once(text: str, old: str, new: str, where: Path) -> str:
    """Replace exactly one occurrence; a changed deploy/ file must fail loudly, not drift."""
    count = text.count(old)
    if count != 1:
        raise ValueError(f"{where}: expected {old!r} once, found it {count} times")
    return text.replace(old, new)


def server_options(upstream: Path = NGINX_UPSTREAM) -> str:
    """The per-server options (max_fails=..., fail_timeout=...) the compose upstream uses."""
    options = set()
    for line in upstream.read_text().splitlines():
        line = line.split("#", 1)[0].strip().rstrip(";")
        if line.startswith("server "):
            options.add(" ".join(line.split()[2:]))
    if len(options) != 1:
        raise ValueError(f"{upstream}: expected one set of server options, got {options}")
    return options.pop()


def render_nginx_site(replica_ports: Sequence[int], lb_port: int, log_dir: Path) -> str:
    """deploy/nginx/sidetask.conf with the upstream servers on 127.0.0.1."""
    text = NGINX_SITE.read_text()
    options = server_options()
    servers = "\n    ".join(f"server 127.0.0.1:{p} {options};" for p in replica_ports)
    text = _replace_once(text, UPSTREAM_INCLUDE, servers, NGINX_SITE)
    text = _replace_once(text, LISTEN, f"listen 127.0.0.1:{lb_port};", NGINX_SITE)
    return _replace_once(text, LOG_DIR, f"{log_dir}/", NGINX_SITE)


def render_nginx_main(prefix: Path, site: Path) -> str:
    """A minimal nginx.conf whose every path lives under ``prefix`` (no root needed)."""
    temp = prefix / "tmp"
    user = "user nobody nogroup;\n" if os.geteuid() == 0 else ""
    return f"""{user}worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log notice;
events {{ worker_connections 512; }}
http {{
    default_type application/octet-stream;
    client_body_temp_path {temp}/client_body;
    proxy_temp_path {temp}/proxy;
    fastcgi_temp_path {temp}/fastcgi;
    uwsgi_temp_path {temp}/uwsgi;
    scgi_temp_path {temp}/scgi;
    include {site};
}}
"""


def _seconds(duration: str) -> float:
    """Prometheus duration ("500ms", "1s", "2m") in seconds; the simple forms only."""
    units = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
    for unit in ("ms", "s", "m", "h"):
        if duration.endswith(unit) and duration[: -len(unit)].isdigit():
            return int(duration[: -len(unit)]) * units[unit]
    raise ValueError(f"unsupported duration {duration!r}")


def render_prometheus(
    replica_ports: Sequence[int], prometheus_port: int, interval: str
) -> dict[str, Any]:
    """deploy/prometheus/prometheus.yml scraping the loopback replicas every ``interval``."""
    config: dict[str, Any] = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    config["global"]["scrape_interval"] = interval
    config["global"]["evaluation_interval"] = interval
    config["global"].setdefault("external_labels", {})["deployment"] = "sidetask-local"
    config["rule_files"] = [
        str((PROMETHEUS_CONFIG.parent / f).resolve()) for f in config["rule_files"]
    ]
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    sidetask = jobs["sidetask"]
    sidetask["static_configs"] = [{"targets": [f"127.0.0.1:{p}" for p in replica_ports]}]
    # a scrape must end before the next one starts
    if _seconds(sidetask.get("scrape_timeout", "10s")) > _seconds(interval):
        sidetask["scrape_timeout"] = interval
    jobs["prometheus"]["static_configs"] = [{"targets": [f"127.0.0.1:{prometheus_port}"]}]
    return config
