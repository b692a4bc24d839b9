"""CPU and resident memory of the processes a host collector watches by executable name.

CPU utilisation is the difference to the previous read of the same pid, over all CPUs; a pid seen
for the first time reports times only.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from infersight.collectors.base import Point
from infersight.collectors.host import metrics as M


class ProcessReader:
    """Reads the watched processes through a psutil-like module's `process_iter`."""

    def __init__(self, ps: Any, names: frozenset[str], clock: Callable[[], float]) -> None:
        self._ps = ps
        self._names = names
        self._clock = clock
        self._prev: dict[int, tuple[float, float]] = {}

    def read(self) -> Iterable[Point]:
        """Points of every running process whose executable name is watched."""
        if not self._names:
            return
        now = self._clock()
        ncpu = self._ps.cpu_count(logical=True) or 1
        seen: dict[int, tuple[float, float]] = {}
        # Fields a process denies us come back as None; vanished processes are skipped by process_iter.
        for proc in self._ps.process_iter(["pid", "name", "cpu_times", "memory_info"]):
            info = proc.info
            if info["name"] not in self._names:
                continue
            attrs = {"process.executable.name": info["name"], "process.pid": info["pid"]}
            if info["memory_info"] is not None:
                yield M.PROC_RSS.point(info["memory_info"].rss, attrs)
            cpu = info["cpu_times"]
            if cpu is None:
                continue
            yield M.PROC_CPU_TIME.point(cpu.user, {**attrs, "cpu.mode": "user"})
            yield M.PROC_CPU_TIME.point(cpu.system, {**attrs, "cpu.mode": "system"})
            used = cpu.user + cpu.system
            seen[info["pid"]] = (now, used)
            if (prev := self._prev.get(info["pid"])) and now > prev[0]:
                yield M.PROC_CPU_UTIL.point(max(used - prev[1], 0.0) / ((now - prev[0]) * ncpu), attrs)
        self._prev = seen
