"""Machine-wide readings from a psutil-like module: CPU, memory, disks, network.

Each reader takes the module it reads from, so tests pass a scripted stand-in. CPU utilisation is
the difference to the previous reading, which is why `CpuReader` is the one reader with state.
"""
from __future__ import annotations

import fnmatch
from collections.abc import Iterable
from typing import Any

from infersight.collectors.base import Point
from infersight.collectors.host import metrics as M

_CPU_MODES = ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal")
_MEM_STATES = ("used", "free", "buffers", "cached")


class CpuReader:
    """CPU times, utilisation since the previous read, logical CPUs and load averages."""

    def __init__(self, ps: Any) -> None:
        self._ps = ps
        self._prev: Any = None

    def read(self) -> Iterable[Point]:
        """CPU points; utilisation only from the second read on."""
        times = self._ps.cpu_times()
        modes = [m for m in _CPU_MODES if hasattr(times, m)]
        for m in modes:
            yield M.CPU_TIME.point(getattr(times, m), {"cpu.mode": m})
        if self._prev is not None:
            deltas = {m: getattr(times, m) - getattr(self._prev, m) for m in modes}
            total = sum(deltas.values())
            if total > 0:
                for m in modes:
                    yield M.CPU_UTIL.point(deltas[m] / total, {"cpu.mode": m})
        self._prev = times
        yield M.CPU_COUNT.point(self._ps.cpu_count(logical=True) or 0)
        for spec, value in zip(M.LOAD, self._ps.getloadavg(), strict=True):
            yield spec.point(value)


def memory(ps: Any) -> Iterable[Point]:
    """Physical memory size, and usage and share by state."""
    vm = ps.virtual_memory()
    yield M.MEM_LIMIT.point(vm.total)
    for state in _MEM_STATES:
        value = getattr(vm, state, None)
        if value is not None:
            yield M.MEM_USAGE.point(value, {"system.memory.state": state})
            yield M.MEM_UTIL.point(value / vm.total if vm.total else 0.0, {"system.memory.state": state})


def disks(ps: Any, exclude: tuple[str, ...]) -> Iterable[Point]:
    """Bytes and operations per block device, but those matching an `exclude` pattern."""
    for dev, c in (ps.disk_io_counters(perdisk=True) or {}).items():
        if any(fnmatch.fnmatch(dev, pat) for pat in exclude):
            continue
        for direction, nbytes, ops in (("read", c.read_bytes, c.read_count),
                                       ("write", c.write_bytes, c.write_count)):
            attrs = {"system.device": dev, "disk.io.direction": direction}
            yield M.DISK_IO.point(nbytes, attrs)
            yield M.DISK_OPS.point(ops, attrs)


def network(ps: Any) -> Iterable[Point]:
    """Bytes, packets and errors per network interface and direction."""
    for nic, c in (ps.net_io_counters(pernic=True) or {}).items():
        for direction, nbytes, packets, errors in (
                ("receive", c.bytes_recv, c.packets_recv, c.errin),
                ("transmit", c.bytes_sent, c.packets_sent, c.errout)):
            attrs = {"network.interface.name": nic, "network.io.direction": direction}
            yield M.NET_IO.point(nbytes, attrs)
            yield M.NET_PACKETS.point(packets, attrs)
            yield M.NET_ERRORS.point(errors, attrs)
