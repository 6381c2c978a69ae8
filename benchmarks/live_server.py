"""A real `sidetask serve` subprocess on a loopback port, its RSS, and HTTP load drivers.

Shared by the overload and soak scripts (and their tests): the numbers they report come
from the process a user would run, over real sockets, not from an in-process app.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parent.parent
TEXT = (
    "Maria Schmidt flew from Berlin to Paris on Monday to meet the board of Acme Corp, "
    "and she said the quarterly results were far better than anyone had expected."
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def rss_mib(pid: int) -> float:
    """Resident set size of ``pid`` in MiB, from /proc/<pid>/status (VmRSS)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024.0
    raise RuntimeError(f"no VmRSS for pid {pid}")


def serve_command() -> list[str]:
    script = Path(sys.executable).with_name("sidetask")
    if script.is_file():
        return [str(script), "serve"]
    return [sys.executable, "-m", "cli.main", "serve"]


@dataclass
class ServerProcess:
    """``sidetask serve`` with SIDETASK_* settings from ``env``; logs go to ``log``."""

    env: Mapping[str, str]
    log: Path
    port: int = field(default_factory=free_port)
    command: Sequence[str] | None = None
    proc: subprocess.Popen[bytes] | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self) -> ServerProcess:
        environ = {
            **os.environ,
            "HF_HUB_OFFLINE": "1",
            "TOKENIZERS_PARALLELISM": "false",
            **self.env,
        }
        command = [*(self.command or serve_command()), "--port", str(self.port)]
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                command, env=environ, stdout=out, stderr=subprocess.STDOUT, cwd=REPO
            )
        return self

    def wait_ready(self, timeout: float = 180.0) -> float:
        """Seconds until /readyz answered 200; raises with the log if the process died."""
        assert self.proc is not None
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited {self.proc.returncode}:\n{self.log_text()}")
            try:
                if httpx.get(self.base + "/readyz", timeout=2).status_code == 200:
                    return time.monotonic() - started
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"server not ready after {timeout}s:\n{self.log_text()}")

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def stop(self, timeout: float = 60.0) -> int:
        """SIGTERM (graceful drain), then SIGKILL if it does not exit in time."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return int(self.proc.returncode)

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.stop(30)


def thread_cpu_ms(pid: int) -> dict[int, float]:
    """CPU time (user + system, ms) of every thread of ``pid`` by thread id (the main thread's
    id is ``pid``), from /proc: unlike latency, barely moved by other processes' load."""
    tick = os.sysconf("SC_CLK_TCK")
    out: dict[int, float] = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            stat = Path(f"/proc/{pid}/task/{tid}/stat").read_text()
        except OSError:  # the thread ended
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        out[int(tid)] = (int(fields[11]) + int(fields[12])) * 1000.0 / tick
    return out


class LeanClient:
    """POST /analyze over one keep-alive ``http.client`` connection: the served latency with as
    little client as a Python process can have (httpx adds its own ~1 ms of parsing and
    bookkeeping per request, which is the client's cost, not the server's). Reconnects once
    when the server closed an idle connection (uvicorn's keep-alive timeout)."""

    def __init__(self, base: str) -> None:
        host, port = base.removeprefix("http://").split(":")
        self.conn = http.client.HTTPConnection(host, int(port), timeout=60)

    def analyze(self, texts: list[str], tasks: list[str]) -> bytes:
        body = json.dumps({"texts": texts, "tasks": tasks})
        for attempt in (0, 1):
            try:
                self.conn.request("POST", "/analyze", body, {"Content-Type": "application/json"})
                response = self.conn.getresponse()
                data = response.read()
                break
            except (ConnectionError, http.client.HTTPException):
                self.conn.close()
                if attempt:
                    raise
        if response.status != 200:
            raise RuntimeError(f"{response.status}: {data[:300]!r}")
        return data

    def close(self) -> None:
        self.conn.close()


class SocketClient:
    """POST /analyze as bytes over one keep-alive socket: a client as lean as curl or wrk
    (~0.05 ms of CPU per request against http.client's ~0.5 ms), so a lone request's latency
    is the server's. Reads exactly the Content-Length the server announces (uvicorn always
    sends one for these responses); anything else is an error."""

    def __init__(self, base: str) -> None:
        host, port = base.removeprefix("http://").split(":")
        self.address = (host, int(port))
        self.sock = self._connect()

    def _connect(self) -> socket.socket:
        sock = socket.create_connection(self.address, timeout=60)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock

    def analyze(self, texts: list[str], tasks: list[str]) -> bytes:
        body = json.dumps({"texts": texts, "tasks": tasks}).encode()
        head = (
            "POST /analyze HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode()
        for attempt in (0, 1):
            try:
                self.sock.sendall(head + body)
                data = self._recv()
                break
            except (ConnectionError, OSError):
                # the server closed the idle keep-alive connection (uvicorn does after 5 s)
                # before this request reached it: nothing was answered, so send it again
                self.sock.close()
                if attempt:
                    raise
                self.sock = self._connect()
        while b"\r\n\r\n" not in data:
            data += self._recv()
        header, _, rest = data.partition(b"\r\n\r\n")
        lines = header.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        length = next(
            int(line.split(":", 1)[1])
            for line in lines
            if line.lower().startswith("content-length:")
        )
        while len(rest) < length:
            rest += self._recv()
        if status != 200:
            raise RuntimeError(f"{status}: {rest[:300]!r}")
        return rest

    def _recv(self) -> bytes:
        chunk = self.sock.recv(1 << 16)
        if not chunk:
            raise ConnectionError("the server closed the connection")
        return chunk

    def close(self) -> None:
        self.sock.close()


class RssSampler:
    """Samples a process's RSS every ``interval`` seconds on a background thread."""

    def __init__(self, pid: int, interval: float = 0.5) -> None:
        self.pid = pid
        self.interval = interval
        self.samples: list[tuple[float, float]] = []  # (seconds since start, MiB)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)
        self.t0 = time.monotonic()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.samples.append((time.monotonic() - self.t0, rss_mib(self.pid)))
            except (OSError, RuntimeError):
                return  # the process is gone
            self._stop.wait(self.interval)

    def start(self) -> RssSampler:
        self._thread.start()
        return self

    def stop(self) -> list[tuple[float, float]]:
        self._stop.set()
        self._thread.join(5)
        return self.samples

    def now(self) -> float:
        return time.monotonic() - self.t0


@dataclass(frozen=True)
class Outcome:
    """One request: when it was sent (s since the phase began), status, latency, Retry-After."""

    sent: float
    status: int  # 0 = transport error
    latency: float
    retry_after: str | None = None
    lag: float = 0.0  # open loop: how late the client sent it (its own backlog)


def percentile(values: Sequence[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def latency_summary(values: Sequence[float]) -> dict[str, Any]:
    if not values:
        return {"n": 0}
    return {
        "n": len(values),
        "p50_s": percentile(values, 50),
        "p90_s": percentile(values, 90),
        "p99_s": percentile(values, 99),
        "max_s": max(values),
        "mean_s": statistics.fmean(values),
    }


def summarise(outcomes: Sequence[Outcome], seconds: float) -> dict[str, Any]:
    """Counts by status and latency per outcome class (accepted 200 vs refused 429)."""
    by_status: dict[str, int] = {}
    for o in outcomes:
        by_status[str(o.status)] = by_status.get(str(o.status), 0) + 1
    ok = [o.latency for o in outcomes if o.status == 200]
    refused = [o for o in outcomes if o.status == 429]
    return {
        "seconds": seconds,
        "sent": len(outcomes),
        "status_counts": by_status,
        "offered_rps": len(outcomes) / seconds if seconds else None,
        "goodput_rps": len(ok) / seconds if seconds else None,
        "accepted_latency": latency_summary(ok),
        "refused_latency": latency_summary([o.latency for o in refused]),
        "refused_with_retry_after": sum(1 for o in refused if o.retry_after),
        "client_lag_p99_s": percentile([o.lag for o in outcomes], 99),
    }


BodyFactory = Callable[[int], dict[str, Any]]


async def _one(
    client: httpx.AsyncClient,
    body: dict[str, Any],
    t0: float,
    timeout: float,
    due: float | None = None,
) -> Outcome:
    sent = time.monotonic()
    try:
        r = await client.post("/analyze", json=body, timeout=timeout)
        status, retry = r.status_code, r.headers.get("retry-after")
    except httpx.HTTPError:
        status, retry = 0, None
    lag = 0.0 if due is None else max(0.0, sent - due)
    return Outcome(sent - t0, status, time.monotonic() - sent, retry, lag)


def _client(base: str) -> httpx.AsyncClient:
    limits = httpx.Limits(max_connections=512, max_keepalive_connections=512)
    return httpx.AsyncClient(base_url=base, limits=limits, timeout=60)


async def closed_loop(
    base: str, bodies: BodyFactory, concurrency: int, seconds: float, timeout: float = 60
) -> list[Outcome]:
    """``concurrency`` clients, each sending its next request when the last one returns."""
    t0 = time.monotonic()
    outcomes: list[Outcome] = []
    counter = iter(range(10**9))

    async with _client(base) as client:

        async def worker() -> None:
            while time.monotonic() - t0 < seconds:
                outcomes.append(await _one(client, bodies(next(counter)), t0, timeout))

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return outcomes


async def open_loop(
    base: str, bodies: BodyFactory, rate: float, seconds: float, timeout: float = 60
) -> list[Outcome]:
    """Requests at a fixed ``rate`` per second whatever the answers (arrivals do not wait)."""
    t0 = time.monotonic()
    tasks: list[asyncio.Task[Outcome]] = []
    async with _client(base) as client:
        i = 0
        while True:
            due = t0 + i / rate
            if due - t0 >= seconds:
                break
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(_one(client, bodies(i), t0, timeout, due)))
            i += 1
        return list(await asyncio.gather(*tasks))


def first_success_after(base: str, body: dict[str, Any], limit: float = 30.0) -> float | None:
    """Seconds until a normal request is answered 200 (None if not within ``limit``)."""
    started = time.monotonic()
    while time.monotonic() - started < limit:
        try:
            r = httpx.post(base + "/analyze", json=body, timeout=limit)
            if r.status_code == 200:
                return time.monotonic() - started
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    return None


def metric_value(base: str, name: str) -> float | None:
    """A single unlabelled sample from /metrics (e.g. sidetask_queue_depth)."""
    for line in httpx.get(base + "/metrics", timeout=10).text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return None


def write_random_heads(backbone: str | None, out: Path) -> Path:
    """Random sentiment (sequence) and ner (token) heads with the method's sizes for a backbone.

    Lets the scripts run on any backbone (the shipped heads folder may be empty); the load
    tests measure the serving path, which does not depend on the heads' trained weights.
    """
    from benchmarks.workload import bench_head
    from heads.io import save_head
    from models.defaults import open_backbone

    bb = open_backbone(backbone)
    save_head(bench_head(bb.info, "sentiment", "sequence", 64, seed=1), out / "sentiment")
    save_head(bench_head(bb.info, "ner", "token", 128, seed=2), out / "ner")
    return out


def server_env(
    backbone: str | None, heads_dir: Path, threads: int, extra: Mapping[str, Any]
) -> dict[str, str]:
    """SIDETASK_* variables for a server run (JSON logs so they can be checked)."""
    env = {
        "SIDETASK_HEADS_DIR": str(heads_dir),
        "SIDETASK_THREADS": str(threads),
        "SIDETASK_LOG_JSON": "true",
        "SIDETASK_LOG_LEVEL": "warning",
    }
    if backbone:
        env["SIDETASK_BACKBONE"] = backbone
    env.update({f"SIDETASK_{k.upper()}": str(v) for k, v in extra.items()})
    return env
