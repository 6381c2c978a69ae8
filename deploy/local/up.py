"""The deploy/ topology for real on one machine, loopback only, no Docker, one command:

    .venv/bin/python deploy/local/up.py                  # 3 replicas, default model
    .venv/bin/python deploy/local/up.py --replicas 2 -- --backbone /path/ckpt --threads 1

It starts N `sidetask serve` replicas on 127.0.0.1, nginx with deploy/nginx/sidetask.conf
rendered for their ports (as a child process, everything under a temp folder), and
Prometheus with deploy/prometheus/prometheus.yml + alerts.yml rendered the same way. It
waits until every replica is ready, prints the URLs (and writes them as JSON with
--state-file), then watches: a replica that dies stays dead (the balancer routes around
it, Prometheus reports it down). Ctrl-C or SIGTERM stops everything gracefully.

Needs nginx and prometheus binaries (Debian: apt-get install nginx prometheus).
Arguments after `--` go to every `sidetask serve`; SIDETASK_* variables are inherited.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from render import render_nginx_main, render_nginx_site, render_prometheus

REPO = Path(__file__).resolve().parents[2]


@dataclass
class Child:
    """One supervised process and where its output goes."""

    name: str
    proc: subprocess.Popen[bytes]
    log: Path
    url: str
    port: int
    _log_file: IO[bytes] | None = field(default=None, repr=False)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def find_binary(name: str) -> str:
    """``name`` on PATH or in the sbin folders (nginx lives in /usr/sbin on Debian)."""
    found = shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/local/sbin:/sbin")
    if found is None:
        raise SystemExit(f"error: {name} not found; install it (Debian: apt-get install {name})")
    return found


def sidetask_command() -> list[str]:
    script = Path(sys.executable).with_name("sidetask")
    return [str(script)] if script.exists() else [sys.executable, "-m", "cli.main"]


def http_ok(url: str, timeout: float = 2.0) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return 200 <= response.status < 300
    except (urllib.error.URLError, OSError):
        return False


class Topology:
    """Replicas + nginx + Prometheus as children of this process."""

    def __init__(self, args: argparse.Namespace, serve_args: Sequence[str]) -> None:
        self.args = args
        self.serve_args = list(serve_args)
        self.workdir = Path(args.workdir or tempfile.mkdtemp(prefix="sidetask-local-"))
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.workdir.chmod(0o755)  # nginx workers (nobody when run as root) read below
        self.replicas: list[Child] = []
        self.nginx: Child | None = None
        self.prometheus: Child | None = None

    # -- start ----------------------------------------------------------------------
    def ports(self) -> tuple[list[int], int, int]:
        a, n = self.args, self.args.replicas
        if a.free_ports:
            return [free_port() for _ in range(n)], free_port(), free_port()
        return [a.replica_base_port + i for i in range(n)], a.lb_port, a.prometheus_port

    def _spawn(self, name: str, cmd: list[str], url: str, port: int) -> Child:
        log = self.workdir / "logs" / f"{name}.log"
        log.parent.mkdir(exist_ok=True)
        out = log.open("wb")
        env = {**os.environ, "HF_HUB_OFFLINE": os.environ.get("HF_HUB_OFFLINE", "1")}
        proc = subprocess.Popen(
            cmd, stdout=out, stderr=subprocess.STDOUT, cwd=REPO, env=env, start_new_session=True
        )
        return Child(name, proc, log, url, port, out)

    def start(self) -> None:
        replica_ports, lb_port, prom_port = self.ports()
        for i, port in enumerate(replica_ports, start=1):
            cmd = [*sidetask_command(), "serve", "--host", "127.0.0.1", "--port", str(port)]
            url = f"http://127.0.0.1:{port}"
            self.replicas.append(self._spawn(f"replica-{i}", cmd + self.serve_args, url, port))
        self.nginx = self._start_nginx(replica_ports, lb_port)
        self.prometheus = self._start_prometheus(replica_ports, prom_port)

    def _start_nginx(self, replica_ports: list[int], lb_port: int) -> Child:
        prefix = self.workdir / "nginx"
        for sub in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
            (prefix / "tmp" / sub).mkdir(parents=True, exist_ok=True)
            (prefix / "tmp" / sub).chmod(0o777)
        site = prefix / "sidetask.conf"
        site.write_text(render_nginx_site(replica_ports, lb_port, prefix))
        main = prefix / "nginx.conf"
        main.write_text(render_nginx_main(prefix, site))
        base = [find_binary("nginx"), "-e", str(prefix / "error.log"), "-p", str(prefix)]
        base += ["-c", str(main)]
        check = subprocess.run([*base, "-t"], capture_output=True, text=True, check=False)
        if check.returncode != 0:
            raise RuntimeError(f"nginx -t failed:\n{check.stderr}")
        cmd = [*base, "-g", "daemon off;"]
        return self._spawn("nginx", cmd, f"http://127.0.0.1:{lb_port}", lb_port)

    def _start_prometheus(self, replica_ports: list[int], port: int) -> Child:
        folder = self.workdir / "prometheus"
        folder.mkdir(exist_ok=True)
        config = folder / "prometheus.yml"
        rendered = render_prometheus(replica_ports, port, self.args.scrape_interval)
        config.write_text(yaml.safe_dump(rendered, sort_keys=False))
        cmd = [
            find_binary("prometheus"),
            f"--config.file={config}",
            f"--storage.tsdb.path={folder / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--web.enable-lifecycle",
        ]
        return self._spawn("prometheus", cmd, f"http://127.0.0.1:{port}", port)

    # -- wait, report ---------------------------------------------------------------
    def wait_ready(self, timeout: float, stop: threading.Event) -> None:
        """Every replica /readyz, nginx and Prometheus answering; a child that exits fails."""
        assert self.nginx is not None and self.prometheus is not None
        checks = [(r, r.url + "/readyz") for r in self.replicas]
        checks += [(self.nginx, self.nginx.url + "/lb-healthz")]
        checks += [(self.prometheus, self.prometheus.url + "/-/ready")]
        deadline = time.monotonic() + timeout
        pending = list(checks)
        while pending:
            if stop.is_set():
                raise RuntimeError("interrupted while starting")
            for child, url in list(pending):
                if not child.alive():
                    raise RuntimeError(
                        f"{child.name} exited with {child.proc.returncode} while starting:\n"
                        f"{child.log_tail()}"
                    )
                if http_ok(url):
                    pending.remove((child, url))
            if pending and time.monotonic() > deadline:
                names = ", ".join(c.name for c, _ in pending)
                raise RuntimeError(f"not ready after {timeout:g}s: {names}")
            if pending:
                time.sleep(0.25)

    def state(self) -> dict[str, Any]:
        assert self.nginx is not None and self.prometheus is not None
        return {
            "balancer": self.nginx.url,
            "prometheus": self.prometheus.url,
            "replicas": [
                {"name": r.name, "url": r.url, "port": r.port, "pid": r.proc.pid}
                for r in self.replicas
            ],
            "pids": {c.name: c.proc.pid for c in self.children()},
            "workdir": str(self.workdir),
            "nginx_access_log": str(self.workdir / "nginx" / "access.log"),
        }

    def children(self) -> list[Child]:
        return [c for c in [*self.replicas, self.nginx, self.prometheus] if c is not None]

    # -- watch, stop ----------------------------------------------------------------
    def watch(self, stop: threading.Event) -> int:
        """Report dead replicas; stop everything if nginx or Prometheus dies."""
        reported: set[str] = set()
        while not stop.wait(0.5):
            for child in self.children():
                if child.alive() or child.name in reported:
                    continue
                reported.add(child.name)
                print(
                    f"{child.name} (pid {child.proc.pid}) exited: {child.proc.returncode}",
                    flush=True,
                )
                if child in (self.nginx, self.prometheus):
                    print(child.log_tail(), file=sys.stderr)
                    return 1
        return 0

    def stop(self, grace: float) -> None:
        """nginx first (no new traffic), then replicas drain on SIGTERM, then Prometheus."""
        order: list[tuple[Child | None, int]] = [(self.nginx, signal.SIGQUIT)]
        order += [(r, signal.SIGTERM) for r in self.replicas]
        order += [(self.prometheus, signal.SIGTERM)]
        for child, sig in order:
            if child is not None and child.alive():
                child.proc.send_signal(sig)
        deadline = time.monotonic() + grace
        for child in self.children():
            try:
                child.proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                child.proc.kill()
                child.proc.wait(5)
            if child._log_file is not None:
                child._log_file.close()
        if not self.args.keep_workdir and self.args.workdir is None:
            shutil.rmtree(self.workdir, ignore_errors=True)


def parse_args(argv: Sequence[str]) -> tuple[argparse.Namespace, list[str]]:
    argv = list(argv)
    serve_args: list[str] = []
    if "--" in argv:
        cut = argv.index("--")
        argv, serve_args = argv[:cut], argv[cut + 1 :]
    p = argparse.ArgumentParser(
        prog="deploy/local/up.py", description=__doc__.split("\n\n")[0] if __doc__ else None
    )
    p.add_argument("--replicas", type=int, default=3, choices=range(1, 10), metavar="N")
    p.add_argument("--replica-base-port", type=int, default=8001, help="replica i: base + i - 1")
    p.add_argument("--lb-port", type=int, default=8080, help="nginx (POST /analyze here)")
    p.add_argument("--prometheus-port", type=int, default=9090)
    p.add_argument("--free-ports", action="store_true", help="pick free ports instead")
    p.add_argument("--scrape-interval", default="5s", help="Prometheus scrape/eval interval")
    p.add_argument("--startup-timeout", type=float, default=300.0, help="seconds to get ready")
    p.add_argument("--drain-grace", type=float, default=40.0, help="seconds to stop gracefully")
    p.add_argument("--state-file", type=Path, help="write URLs and pids here (JSON) when ready")
    p.add_argument("--workdir", type=Path, help="configs and logs here (kept); default a temp dir")
    p.add_argument("--keep-workdir", action="store_true", help="keep the temp dir on exit")
    return p.parse_args(argv), serve_args


def main(argv: Sequence[str] | None = None) -> int:
    args, serve_args = parse_args(sys.argv[1:] if argv is None else argv)
    topology = Topology(args, serve_args)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    code = 1
    try:
        topology.start()
        topology.wait_ready(args.startup_timeout, stop)
        state = topology.state()
        if args.state_file:
            tmp = args.state_file.with_suffix(".tmp")
            tmp.write_text(json.dumps(state, indent=2))
            tmp.replace(args.state_file)
        replicas = ", ".join(f"{r['url']} (pid {r['pid']})" for r in state["replicas"])
        print(
            "sidetask local topology ready\n"
            f"  balancer    {state['balancer']}  (POST /analyze)\n"
            f"  replicas    {replicas}\n"
            f"  prometheus  {state['prometheus']}\n"
            f"  workdir     {state['workdir']}  (configs, logs)\n"
            "Ctrl-C stops everything.",
            flush=True,
        )
        code = topology.watch(stop)
    except (RuntimeError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
    finally:
        topology.stop(args.drain_grace)
    return code


if __name__ == "__main__":
    raise SystemExit(main())
