"""The balancer config: retries for POST /analyze, limits in line with the server, valid
for nginx itself (nginx -t on the loopback rendering that deploy/local uses)."""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
from pathlib import Path
from types import ModuleType

import pytest

from server.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
SITE = ROOT / "deploy" / "nginx" / "sidetask.conf"
NGINX = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/usr/local/sbin")


def _render() -> ModuleType:
    """deploy/local/render.py, loaded by path (deploy/ is not a Python package)."""
    spec = importlib.util.spec_from_file_location("render", ROOT / "deploy" / "local" / "render.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _directive(text: str, name: str) -> str:
    """A directive of the server block (4 spaces in), not of a location inside it."""
    (value,) = re.findall(rf"^ {{4}}{name}\s+([^;]+);", text, re.M)
    return str(value)


def _seconds(value: str) -> float:
    match = re.fullmatch(r"(\d+)s", value)
    assert match, value
    return float(match[1])


def test_only_fast_failures_are_retried_on_another_replica() -> None:
    """The policy tests/deploy/test_nginx_retries.py runs for real, stated statically."""
    text = SITE.read_text()
    conditions = set(_directive(text, "proxy_next_upstream").split())
    # POST is not idempotent to nginx: without non_idempotent it never retries /analyze.
    assert {"error", "timeout", "http_503", "http_429", "non_idempotent"} <= conditions
    assert "http_504" not in conditions  # a replica's deadline passed: never resend
    assert int(_directive(text, "proxy_next_upstream_tries")) >= 2
    upstream = (ROOT / "deploy" / "nginx" / "upstream.conf").read_text()
    assert re.findall(r"max_fails=\d+ fail_timeout=\d+s", upstream)


def test_admin_calls_are_never_retried() -> None:
    text = SITE.read_text()
    block = re.search(r"location /admin/ \{([^}]*)\}", text)
    assert block and re.search(r"^\s*proxy_next_upstream off;", block[1], re.M)


def test_limits_match_the_servers_defaults() -> None:
    text = SITE.read_text()
    defaults = {name: field.default for name, field in Settings.model_fields.items()}
    body = _directive(text, "client_max_body_size")
    assert body.endswith("m") and int(body[:-1]) * 1024 * 1024 == defaults["max_body_bytes"]
    # nginx must wait longer than the replica's own deadline, or it cuts off its 504
    read = _seconds(_directive(text, "proxy_read_timeout"))
    assert read > defaults["request_timeout_s"]
    assert _seconds(_directive(text, "proxy_connect_timeout")) <= 5
    # retries only happen early: a read timeout (or any failure that late) is never resent
    window = _seconds(_directive(text, "proxy_next_upstream_timeout"))
    assert window < read and window < defaults["request_timeout_s"]


def test_rendering_keeps_every_directive_and_only_moves_addresses(tmp_path: Path) -> None:
    render = _render()
    site = render.render_nginx_site([9001, 9002], 9000, tmp_path)
    assert "server 127.0.0.1:9001 max_fails=2 fail_timeout=10s;" in site
    assert "listen 127.0.0.1:9000;" in site
    original = [ln for ln in SITE.read_text().splitlines() if "proxy_" in ln or "client_" in ln]
    assert all(line in site.splitlines() for line in original)


def test_rendering_refuses_a_config_it_does_not_recognise(tmp_path: Path) -> None:
    render = _render()
    with pytest.raises(ValueError, match="expected"):
        render._replace_once("listen 80;", render.LISTEN, "x", SITE)


@pytest.mark.skipif(NGINX is None, reason="nginx not installed (apt-get install nginx)")
def test_nginx_accepts_the_rendered_config(tmp_path: Path) -> None:
    assert NGINX is not None
    render = _render()
    (tmp_path / "tmp").mkdir()
    site = tmp_path / "sidetask.conf"
    site.write_text(render.render_nginx_site([9001, 9002, 9003], 9000, tmp_path))
    main = tmp_path / "nginx.conf"
    main.write_text(render.render_nginx_main(tmp_path, site))
    args = [NGINX, "-e", str(tmp_path / "error.log"), "-p", str(tmp_path), "-c", str(main), "-t"]
    result = subprocess.run(args, capture_output=True, text=True, timeout=30, check=False)
    assert result.returncode == 0, result.stderr
