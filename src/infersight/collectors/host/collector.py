"""The `host` collector: CPU, memory, disk, network, load and selected processes of the machine.

The data source is a psutil-like module passed in, so the collector can run against any object
with psutil's functions. Utilizations come from deltas between two collects, so the first collect
reports times and counters only.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any, Literal

from infersight.collectors.base import Point, type_of
from infersight.collectors.host import system
from infersight.collectors.host.metrics import METRICS
from infersight.collectors.host.processes import ProcessReader
from infersight.config import CollectorConfig


class HostConfig(CollectorConfig):
    """Options of the `host` collector.

    `process_names`: executable names (as `ps -o comm` shows them, e.g. `vllm`, `python3`) whose
    CPU and resident memory are reported per process. `exclude_disks`: shell patterns of block
    devices left out (loop and RAM disks are noise on most hosts).
    """

    type: Literal["host"] = "host"
    process_names: tuple[str, ...] = ()
    exclude_disks: tuple[str, ...] = ("loop*", "ram*", "zram*")


class HostCollector:
    """Machine-wide `system.*` metrics plus `process.*` for watched executables; see `metrics.METRICS`."""

    type = type_of(HostConfig)
    Config = HostConfig
    metrics = METRICS
    needs_two_samples = True  # CPU and process utilisation come from the times between two collects

    def __init__(self, ps: Any, process_names: Iterable[str] = (),
                 exclude_disks: Iterable[str] = (), clock: Callable[[], float] = time.monotonic) -> None:
        self._ps = ps
        self._exclude = tuple(exclude_disks)
        self._cpu = system.CpuReader(ps)
        self._processes = ProcessReader(ps, frozenset(process_names), clock)

    @classmethod
    def from_config(cls, cfg: HostConfig) -> HostCollector:
        """The collector over the real psutil."""
        import psutil

        return cls(psutil, cfg.process_names, cfg.exclude_disks)

    def collect(self) -> list[Point]:
        """One reading of every source."""
        return [*self._cpu.read(), *system.memory(self._ps), *system.disks(self._ps, self._exclude),
                *system.network(self._ps), *self._processes.read()]

    def close(self) -> None:
        """Nothing to release."""
        return None
