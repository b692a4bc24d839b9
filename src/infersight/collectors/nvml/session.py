"""One NVML session: initialise once, read every GPU through the readers in order, shut down.

A GPU's health is the worst verdict of its readers (`collectors.hw.worst`); a GPU that stops
answering mid-read reports only `hw.status` = failed until it answers again. When NVML cannot be
initialised (no binding, no driver) the session logs once and reports nothing from then on.
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from infersight.collectors.base import Point
from infersight.collectors.hw import HwState, status_points, worst
from infersight.collectors.nvml import errors, gpm, mig, readers
from infersight.collectors.nvml.device import Device, Lost, Nvml, describe, text
from infersight.collectors.nvml.processes import ProcessReader

log = logging.getLogger(__name__)

Reader = Callable[[Nvml, Device, list[Point]], HwState]


class Session:
    """The GPUs of one NVML binding and the readers the collector's options switch on."""

    def __init__(self, nv: Nvml, *, processes: bool, proc_root: Path, mig_on: bool, xid: bool,
                 nvlink: bool) -> None:
        self._nv = nv
        self._procs = ProcessReader(proc_root) if processes else None
        optional: tuple[tuple[Reader, bool], ...] = (
            (errors.nvlink, nvlink), (errors.xids, xid), (mig.instances, mig_on), (gpm.device_gpm, nv.gpm))
        self._readers: tuple[Reader, ...] = (
            readers.utilization, readers.device_memory, readers.power, readers.temperature, readers.clocks,
            readers.pcie_link, errors.ecc, errors.remapped_rows, *(r for r, on in optional if on),
            readers.pcie_throughput, *((self._procs,) if self._procs else ()))
        self._devices: list[Device] | None = None
        self._unavailable = False
        self._driver = ""

    def start(self) -> bool:
        """Initialise NVML on first use; False (from then on) when it cannot be."""
        if self._devices is not None:
            return True
        if self._unavailable:
            return False
        n = self._nv.n
        if n is None:
            return self._give_up("the nvidia-ml-py package (pynvml) is not installed")
        try:
            n.nvmlInit()
            count = n.nvmlDeviceGetCount()
            self._driver = text(n.nvmlSystemGetDriverVersion())
        except n.NVMLError as err:
            return self._give_up(f"NVML did not initialise: {err}")
        self._nv.gpm_ids = gpm.known_metrics(n)
        self._devices = [Device(index=i) for i in range(count)]
        log.info("NVML %s: %d GPU(s)", self._driver, count)
        return True

    def _give_up(self, why: str) -> bool:
        self._unavailable = True
        log.warning("nvml collector disabled: %s; no GPU metrics will be reported", why)
        return False

    def read(self) -> list[Point]:
        """Every GPU's points, each followed by its `hw.status`."""
        out: list[Point] = []
        for dev in self._devices or ():
            out.extend(self._read_device(dev))
        if self._procs is not None:
            self._procs.forget_unseen()
        return out

    def _read_device(self, dev: Device) -> list[Point]:
        nv = self._nv
        out: list[Point] = []
        try:
            if dev.handle is None:
                dev.handle = nv.n.nvmlDeviceGetHandleByIndex(dev.index)
            if not dev.described:
                describe(nv, dev, self._driver)
            state = worst(*[read(nv, dev, out) for read in self._readers])
            if dev.lost:
                log.warning("gpu%d (%s) answers again", dev.index, dev.attrs["hw.id"])
                dev.lost = False
        except (Lost, nv.n.NVMLError) as err:
            if not dev.attrs:
                dev.attrs = {"hw.id": f"gpu{dev.index}", "hw.type": "gpu", "hw.name": f"gpu{dev.index}"}
            if not dev.lost:
                log.warning("gpu%d (%s) is not answering: %s", dev.index, dev.attrs["hw.id"], err)
                dev.lost = True
            out, state = [], "failed"
        return out + status_points(dev.attrs, state, dev.identity)

    def close(self) -> None:
        """Free GPM buffers and event sets, shut NVML down; a later `start` initialises again."""
        nv, devices, self._devices = self._nv, self._devices, None
        if not devices:
            return
        for dev in devices:
            gpm.free(nv, dev)
            if dev.events is not None:
                nv.quiet(nv.n.nvmlEventSetFree, dev.events)
        nv.quiet(nv.n.nvmlShutdown)
