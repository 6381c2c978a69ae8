"""The balancer's retry policy, run for real: nginx with deploy/nginx/sidetask.conf in front
of stand-in replicas that answer as a draining, dead, dying, overloaded or timed-out replica
would. What fails fast before any answer is resent to another replica; a timeout (the
replica's 504 or nginx's own read timeout) and anything under /admin/ reach one replica once.
"""

from __future__ import annotations

import contextlib
import importlib.util
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import ModuleType

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]
NGINX = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/usr/local/sbin")

pytestmark = [
    pytest.mark.skipif(NGINX is None, reason="nginx not installed (apt-get install nginx)"),
    pytest.mark.timeout(60),
]


def _render() -> ModuleType:
    spec = importlib.util.spec_from_file_location("render", ROOT / "deploy" / "local" / "render.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class Replica(ThreadingHTTPServer):
    """Answers every request as ``mode`` says: "ok", a status code ("503"), "close" (the
    process dies mid-request: the connection drops without an answer) or "hang"."""

    daemon_threads = True

    def __init__(self, mode: str) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.mode = mode
        self.hits: Counter[str] = Counter()
        self.release = threading.Event()

    @property
    def port(self) -> int:
        return int(self.server_address[1])


class _Handler(BaseHTTPRequestHandler):
    server: Replica

    def log_message(self, format: str, *args: object) -> None:  # quiet
        pass

    def _answer(self) -> None:
        self.rfile.read(int(self.headers.get("content-length") or 0))
        self.server.hits[self.path] += 1
        mode = self.server.mode
        if mode == "close":
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        if mode == "hang":
            self.server.release.wait(30)
            return
        status = 200 if mode == "ok" else int(mode)
        body = b'{"results": []}' if status == 200 else b'{"error": {"code": "x"}}'
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _answer


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def balancer(ports: list[int], read_timeout_s: float | None = None) -> Iterator[str]:
    """nginx running the project's site config in front of ``ports``.

    ``read_timeout_s`` shortens proxy_read_timeout for a test and scales
    proxy_next_upstream_timeout by the same factor, keeping the shipped ratio between them.
    """
    assert NGINX is not None
    render = _render()
    prefix = Path(tempfile.mkdtemp(prefix="sidetask-nginx-"))
    prefix.chmod(0o755)  # nginx workers (nobody when run as root) read below
    (prefix / "tmp").mkdir()
    lb_port = _free_port()
    site_text = render.render_nginx_site(ports, lb_port, prefix)
    if read_timeout_s is not None:
        read = _seconds(_directive(site_text, "proxy_read_timeout"))
        retry_window = _seconds(_directive(site_text, "proxy_next_upstream_timeout"))
        ms = round(retry_window * read_timeout_s / read * 1000)
        site_text = re.sub(
            r"proxy_read_timeout \w+;", f"proxy_read_timeout {read_timeout_s}s;", site_text
        )
        site_text = re.sub(
            r"proxy_next_upstream_timeout \w+;", f"proxy_next_upstream_timeout {ms}ms;", site_text
        )
    site = prefix / "sidetask.conf"
    site.write_text(site_text)
    main = prefix / "nginx.conf"
    main.write_text(render.render_nginx_main(prefix, site))
    args = [NGINX, "-e", str(prefix / "error.log"), "-p", str(prefix), "-c", str(main)]
    proc = subprocess.Popen([*args, "-g", "daemon off;"], stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{lb_port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(url + "/lb-healthz", timeout=1).status_code == 200:
                    break
            assert time.monotonic() < deadline, "nginx did not start"
            time.sleep(0.05)
        yield url
    finally:
        proc.send_signal(signal.SIGQUIT)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        shutil.rmtree(prefix, ignore_errors=True)


def _directive(text: str, name: str) -> str:
    (value,) = re.findall(rf"^ {{4}}{name}\s+([^;]+);", text, re.M)  # server level only
    return str(value)


def _seconds(value: str) -> float:
    match = re.fullmatch(r"(\d+)(ms|s)", value)
    assert match, value
    return int(match[1]) / (1000 if match[2] == "ms" else 1)


@contextlib.contextmanager
def replicas(*modes: str) -> Iterator[list[Replica]]:
    servers = [Replica(m) for m in modes]
    threads = [threading.Thread(target=s.serve_forever, daemon=True) for s in servers]
    for t in threads:
        t.start()
    try:
        yield servers
    finally:
        for s in servers:
            s.release.set()
            s.shutdown()
            s.server_close()


def _post(url: str, path: str = "/analyze", timeout: float = 20) -> int:
    return httpx.post(url + path, json={"texts": ["x"]}, timeout=timeout).status_code


@pytest.mark.parametrize("failing", ["503", "429", "close"], ids=["draining", "full", "died"])
def test_a_replica_that_fails_fast_is_retried_on_another(failing: str) -> None:
    """Draining/loading (503), a full queue (429), a process that died mid-request."""
    with replicas(failing, "ok") as (bad, good), balancer([bad.port, good.port]) as url:
        codes = [_post(url) for _ in range(6)]
        assert codes == [200] * 6
        assert bad.hits["/analyze"] >= 1  # some request went to it first, then was resent


def test_a_refused_connection_is_retried_on_another() -> None:
    dead = _free_port()  # nothing listens there
    with replicas("ok") as (good,), balancer([dead, good.port]) as url:
        assert [_post(url) for _ in range(6)] == [200] * 6


def test_a_replicas_timeout_504_is_not_retried() -> None:
    with replicas("504", "504") as servers, balancer([s.port for s in servers]) as url:
        assert _post(url) == 504
        assert sum(s.hits["/analyze"] for s in servers) == 1


def test_nginx_read_timeout_is_answered_once_not_retried() -> None:
    with (
        replicas("hang", "hang") as servers,
        balancer([s.port for s in servers], read_timeout_s=1) as url,
    ):
        assert _post(url) == 504
        assert sum(s.hits["/analyze"] for s in servers) == 1


@pytest.mark.parametrize("failing", ["503", "close"])
def test_admin_posts_reach_one_replica_and_are_never_retried(failing: str) -> None:
    with replicas(failing, failing) as servers, balancer([s.port for s in servers]) as url:
        assert _post(url, "/admin/reload") in (502, 503)
        assert sum(s.hits["/admin/reload"] for s in servers) == 1
