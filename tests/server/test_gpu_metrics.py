"""GPU memory gauges: exported per CUDA device when CUDA is in use, absent on CPU replicas."""

from __future__ import annotations

import shutil
import subprocess
from types import SimpleNamespace

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from server.gpu_metrics import GpuMemoryCollector
from server.metrics import Metrics


def _fake_cuda(initialized: bool) -> SimpleNamespace:
    return SimpleNamespace(
        is_available=lambda: True,
        is_initialized=lambda: initialized,
        device_count=lambda: 2,
        memory_allocated=lambda i: 1000 + i,
        memory_reserved=lambda i: 4096 * (i + 1),
        max_memory_allocated=lambda i: 5000 + i,
    )


def _scrape(cuda: SimpleNamespace) -> str:
    registry = CollectorRegistry()
    registry.register(GpuMemoryCollector(cuda))
    return generate_latest(registry).decode()


def test_every_cuda_device_reports_allocated_reserved_and_peak_bytes() -> None:
    text = _scrape(_fake_cuda(initialized=True))
    assert 'sidetask_gpu_memory_allocated_bytes{device="cuda:0"} 1000.0' in text
    assert 'sidetask_gpu_memory_allocated_bytes{device="cuda:1"} 1001.0' in text
    assert 'sidetask_gpu_memory_reserved_bytes{device="cuda:1"} 8192.0' in text
    assert 'sidetask_gpu_memory_max_allocated_bytes{device="cuda:0"} 5000.0' in text
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool not installed (apt-get install prometheus)")
    check = subprocess.run(
        [promtool, "check", "metrics"], input=text, capture_output=True, text=True, check=False
    )
    assert check.returncode == 0 and not check.stdout.strip(), check.stdout + check.stderr


def test_a_replica_that_never_used_cuda_exports_no_gpu_series() -> None:
    assert "sidetask_gpu" not in _scrape(_fake_cuda(initialized=False))
    assert "sidetask_gpu" not in Metrics().scrape().decode()  # this CPU machine
