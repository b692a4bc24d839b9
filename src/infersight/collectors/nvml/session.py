"""One NVML session: initialise once, read every GPU through the readers in order, shut down.

A GPU's health is the worst verdict of its readers (`collectors.hw.worst`); a GPU that stops
answering mid-read reports only `hw.status` = failed and `infersight.gpu.reachable` = 0 until it
answers again. When NVML cannot be initialised (no binding, no driver) the session logs once, reports
no points and says so in `health()` (down, reason `nvml_missing` or `nvml_init`); initialisation is
tried again with exponential backoff (`init_backoff_seconds`), so a driver that comes back is picked up.
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from infersight.collectors.base import Health, Point
from infersight.collectors.hw import HwState, status_points, worst
from infersight.collectors.nvml import errors, gpm, mig, readers
from infersight.collectors.nvml.device import Device, Lost, Nvml, describe, text
from infersight.collectors.nvml.metrics import REACHABLE
from infersight.collectors.nvml.processes import ProcessReader

log = logging.getLogger(__name__)

Reader = Callable[[Nvml, Device, list[Point]], HwState]


class Session:
    """The GPUs of one NVML binding and the readers the collector's options switch on."""

    def __init__(self, nv: Nvml, *, processes: bool, proc_root: Path, mig_on: bool, xid: bool,
                 nvlink: bool, init_backoff_seconds: tuple[float, float] = (10.0, 300.0)) -> None:
        self._nv = nv
        self._procs = ProcessReader(proc_root) if processes else None
        optional: tuple[tuple[Reader, bool], ...] = (
            (errors.nvlink, nvlink), (errors.xids, xid), (mig.instances, mig_on), (gpm.device_gpm, nv.gpm))
        self._readers: tuple[Reader, ...] = (
            readers.utilization, readers.device_memory, readers.power, readers.temperature, readers.clocks,
            readers.pcie_link, errors.ecc, errors.remapped_rows, *(r for r, on in optional if on),
            readers.pcie_throughput, *((self._procs,) if self._procs else ()))
        self._devices: list[Device] | None = None
        self._backoff = init_backoff_seconds
        self._failures = 0
        self._retry_at = float("-inf")
        self._down: Health | None = None  # why NVML is not initialised, while it is not
        self._driver = ""

    def start(self) -> bool:
        """Initialise NVML on first use; False while it cannot be (tried again after a backoff)."""
        if self._devices is not None:
            return True
        if self._nv.clock() < self._retry_at:
            return False
        n = self._nv.n
        if n is None:  # nothing to retry: the package is missing
            self._retry_at = float("inf")
            return self._failed("nvml_missing", "the nvidia-ml-py package (pynvml) is not installed")
        try:
            n.nvmlInit()
            count = n.nvmlDeviceGetCount()
            self._driver = text(n.nvmlSystemGetDriverVersion())
        except n.NVMLError as err:
            delay = min(self._backoff[0] * 2 ** self._failures, self._backoff[1])
            self._retry_at = self._nv.clock() + delay
            return self._failed("nvml_init", f"NVML did not initialise: {err}", f"; next try in {delay:g} s")
        self._nv.gpm_ids = gpm.known_metrics(n)
        self._devices = [Device(index=i) for i in range(count)]
        if self._down is not None:
            log.warning("nvml collector: NVML initialised after %d failed tries", self._failures)
        self._down, self._failures = None, 0
        log.info("NVML %s: %d GPU(s)", self._driver, count)
        return True

    def _failed(self, reason: str, why: str, retry: str = "") -> bool:
        (log.warning if self._down is None else log.debug)(
            "nvml collector disabled: %s; no GPU metrics will be reported%s", why, retry)
        self._down = Health(False, reason, why)
        self._failures += 1
        return False

    def health(self) -> Health:
        """Down while NVML is not initialised; each GPU that does not answer is a problem."""
        if self._down is not None:
            return self._down
        lost = tuple(f"gpu{d.index} ({d.attrs.get('hw.id', '?')}) is not answering" for d in self._devices or ()
                     if d.lost)
        return Health(True, problems=lost)

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
        reachable = REACHABLE.point(0 if dev.lost else 1, dev.attrs)
        return [*out, reachable, *status_points(dev.attrs, state, dev.identity)]

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
