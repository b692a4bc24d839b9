"""Per-process GPU memory and utilisation, with the container and pod each process runs in.

The owner of a pid (executable name, `container.id`, `k8s.pod.uid`, from `<proc_root>/<pid>`) is
cached while the pid keeps appearing on some GPU; the session forgets pids no GPU reported.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from infersight.collectors.base import Point
from infersight.collectors.hw import HwState
from infersight.collectors.nvml import metrics as M
from infersight.collectors.nvml.cgroup import process_attributes
from infersight.collectors.nvml.device import Device, Nvml

_NO_MIG_INSTANCE = 0xFFFFFFFF


class ProcessReader:
    """A reader (like the functions in `readers`) that keeps the pid -> owner cache across GPUs."""

    def __init__(self, proc_root: Path) -> None:
        self._proc_root = proc_root
        self._owners: dict[int, dict[str, Any]] = {}
        self._seen: set[int] = set()

    def __call__(self, nv: Nvml, dev: Device, out: list[Point]) -> HwState:
        h, a = dev.handle, dev.attrs
        for p in nv.call(dev, "nvmlDeviceGetComputeRunningProcesses", h) or ():
            self._seen.add(p.pid)
            base = dev.mig.get(getattr(p, "gpuInstanceId", _NO_MIG_INSTANCE), a)
            if p.usedGpuMemory is not None:
                out.append(M.PROC_MEMORY.point(p.usedGpuMemory, {**base, **self._owner(p.pid)}))
        samples = nv.call(dev, "nvmlDeviceGetProcessUtilization", h, dev.proc_ts, key=())
        latest: dict[int, Any] = {}
        for s in samples or ():
            if s.pid not in latest or s.timeStamp > latest[s.pid].timeStamp:
                latest[s.pid] = s
        for pid, s in latest.items():
            self._seen.add(pid)
            dev.proc_ts = max(dev.proc_ts, s.timeStamp)
            pa = {**a, **self._owner(pid)}
            out.append(M.PROC_UTIL.point(s.smUtil / 100, {**pa, "hw.gpu.task": "general"}))
            out.append(M.PROC_MEMCTL_UTIL.point(s.memUtil / 100, pa))
            for task, v in (("encoder", s.encUtil), ("decoder", s.decUtil)):
                if v:
                    out.append(M.PROC_UTIL.point(v / 100, {**pa, "hw.gpu.task": task}))
        return "ok"

    def forget_unseen(self) -> None:
        """After a collect over every GPU: drop the owners of pids none of them reported."""
        for pid in self._owners.keys() - self._seen:
            del self._owners[pid]
        self._seen = set()

    def _owner(self, pid: int) -> dict[str, Any]:
        attrs = self._owners.get(pid)
        if attrs is None:
            attrs = self._owners[pid] = {"process.pid": pid, **process_attributes(self._proc_root, pid)}
        return attrs
