"""GPU memory gauges, read from torch's CUDA caching allocator at scrape time.

A collector rather than gauges set by the worker: the numbers are always current, and a CPU
replica (CUDA never initialised) exports no GPU series at all instead of misleading zeros.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector


class GpuMemoryCollector(Collector):
    """sidetask_gpu_memory_{allocated,reserved,max_allocated}_bytes per CUDA device."""

    def __init__(self, cuda: Any = None) -> None:
        self._cuda = cuda  # torch.cuda, or a stand-in in tests; imported lazily otherwise

    def _module(self) -> Any:
        if self._cuda is None:
            import torch

            self._cuda = torch.cuda
        return self._cuda

    def describe(self) -> Iterator[GaugeMetricFamily]:
        return iter(())  # samples depend on the devices seen at scrape time

    def collect(self) -> Iterator[GaugeMetricFamily]:
        cuda = self._module()
        if not cuda.is_available() or not cuda.is_initialized():
            return
        families = {
            "allocated": ("memory_allocated", "GPU memory held by tensors."),
            "reserved": ("memory_reserved", "GPU memory reserved by the caching allocator."),
            "max_allocated": (
                "max_memory_allocated",
                "Peak GPU memory held by tensors since start.",
            ),
        }
        for suffix, (fn, doc) in families.items():
            family = GaugeMetricFamily(
                f"sidetask_gpu_memory_{suffix}_bytes", doc, labels=["device"]
            )
            for index in range(cuda.device_count()):
                family.add_metric([f"cuda:{index}"], float(getattr(cuda, fn)(index)))
            yield family
