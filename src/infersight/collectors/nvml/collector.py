"""NVIDIA GPUs through NVML, with GPM profiling metrics on Hopper and newer, without DCGM.

The NVML binding (the `pynvml` module of nvidia-ml-py, or a replay of a capture) is passed
in; the collector never imports it outside `from_config`. Every NVML call goes through
`_Reader.call`, which remembers per device what answered NOT_SUPPORTED (so it is asked once)
and turns a GPU that fell off the bus into `hw.status` = failed instead of an exception.
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from infersight.collectors.base import Point
from infersight.collectors.nvml import metrics as M
from infersight.collectors.nvml.cgroup import process_attributes
from infersight.config import CollectorConfig

log = logging.getLogger(__name__)

_STATES = ("ok", "degraded", "failed")
_MIB = 1024 * 1024
_KIB = 1024
# NVML error codes (identical in every NVML version).
_NOT_SUPPORTED, _NO_PERMISSION, _INVALID_ARGUMENT = 3, 4, 2
_NOT_FOUND, _TIMEOUT, _FUNCTION_NOT_FOUND = 6, 10, 13
_GPU_IS_LOST, _RESET_REQUIRED, _ARGUMENT_VERSION_MISMATCH = 15, 16, 25
# Answers that will not change while the driver stays loaded: ask once, then skip.
_PERMANENT = frozenset({_NOT_SUPPORTED, _NO_PERMISSION, _INVALID_ARGUMENT, _FUNCTION_NOT_FOUND,
                        _ARGUMENT_VERSION_MISMATCH})
_LOST = frozenset({_GPU_IS_LOST, _RESET_REQUIRED})
_NO_MIG_INSTANCE = 0xFFFFFFFF
_MAX_EVENTS_PER_COLLECT = 1000
# nvmlValueType_t -> the member of the nvmlValue_t union that holds it
_VALUE_MEMBERS = {0: "dVal", 1: "uiVal", 2: "ulVal", 3: "ullVal", 4: "sllVal", 5: "siVal", 6: "usVal"}


class NvmlConfig(CollectorConfig):
    """Options of the `nvml` collector (`pip install infersight[nvidia]`)."""

    type: Literal["nvml"] = "nvml"
    gpm: bool = Field(True, description="Read GPM profiling metrics (SM, tensor, DRAM activity; PCIe and "
                                        "NVLink bytes) on GPUs that support them (Hopper and newer). GPM "
                                        "values cover the time between two collects, so they start with "
                                        "the second one.")
    processes: bool = Field(True, description="Report GPU memory and utilisation per process, with the "
                                              "container and Kubernetes pod read from /proc/<pid>/cgroup.")
    proc_root: Path = Field(Path("/proc"), description="Where the host's /proc is mounted (e.g. /host/proc "
                                                       "when the agent runs in a container with hostPID).")
    mig: bool = Field(True, description="Report memory and GPM metrics per MIG instance on GPUs in MIG mode.")
    xid: bool = Field(True, description="Count XID errors from an NVML event set.")
    nvlink: bool = Field(True, description="Report NVLink link state and error counters where supported.")


@dataclass
class _Gpm:
    """Two GPM sample buffers used alternately; metrics are computed between consecutive collects."""

    samples: list[Any]
    prev: Any = None
    prev_t: float = 0.0
    io_bytes: dict[tuple[str, str], float] = field(default_factory=dict)
    io_start_ns: int = 0


@dataclass
class _Device:
    index: int
    handle: Any = None
    attrs: dict[str, Any] = field(default_factory=dict)
    identity: dict[str, Any] = field(default_factory=dict)
    described: bool = False
    unsupported: set[tuple] = field(default_factory=set)
    max_clocks: dict[str, int] = field(default_factory=dict)
    nvlinks: list[int] | None = None
    gpm: _Gpm | None = None
    gpm_checked: bool = False
    mig_gpm: dict[int, _Gpm] = field(default_factory=dict)
    events: Any = None
    events_checked: bool = False
    xid_counts: dict[int, int] = field(default_factory=dict)
    xid_start_ns: int = 0
    ecc_uncorrected: int | None = None
    proc_ts: int = 0
    lost: bool = False


class _Lost(Exception):
    """The GPU stopped answering (fell off the bus or needs a reset)."""


def _text(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


class NvmlCollector:
    """Per-GPU, per-MIG-instance and per-process metrics from NVML; see `metrics.METRICS`."""

    type = "nvml"
    Config = NvmlConfig
    metrics = M.METRICS

    def __init__(self, nvml: Any | None, *, gpm: bool = True, processes: bool = True,
                 proc_root: Path = Path("/proc"), mig: bool = True, xid: bool = True, nvlink: bool = True,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._nvml = nvml
        self._gpm_on, self._procs_on, self._mig_on = gpm, processes, mig
        self._xid_on, self._nvlink_on = xid, nvlink
        self._proc_root = Path(proc_root)
        self._clock = clock
        self._lock = threading.Lock()
        self._devices: list[_Device] | None = None
        self._unavailable = False
        self._driver = ""
        self._proc_cache: dict[int, dict[str, str]] = {}
        self._gpm_ids: list[tuple[int, str]] = []

    @classmethod
    def from_config(cls, cfg: NvmlConfig) -> NvmlCollector:
        try:
            import pynvml  # nvidia-ml-py
        except ImportError:
            pynvml = None
        return cls(pynvml, gpm=cfg.gpm, processes=cfg.processes, proc_root=cfg.proc_root, mig=cfg.mig,
                   xid=cfg.xid, nvlink=cfg.nvlink)

    # -- lifecycle ---------------------------------------------------------------------------
    def _start(self) -> bool:
        if self._devices is not None:
            return True
        if self._unavailable:
            return False
        n = self._nvml
        if n is None:
            return self._give_up("the nvidia-ml-py package (pynvml) is not installed")
        try:
            n.nvmlInit()
            count = n.nvmlDeviceGetCount()
            self._driver = _text(n.nvmlSystemGetDriverVersion())
        except n.NVMLError as err:
            return self._give_up(f"NVML did not initialise: {err}")
        for name, _spec, _attrs in M.GPM_GAUGES:
            if hasattr(n, name):
                self._gpm_ids.append((getattr(n, name), name))
        for name, _attrs in M.GPM_RATES:
            if hasattr(n, name):
                self._gpm_ids.append((getattr(n, name), name))
        self._devices = [_Device(index=i) for i in range(count)]
        log.info("NVML %s: %d GPU(s)", self._driver, count)
        return True

    def _give_up(self, why: str) -> bool:
        self._unavailable = True
        log.warning("nvml collector disabled: %s; no GPU metrics will be reported", why)
        return False

    def close(self) -> None:
        with self._lock:
            n, devices, self._devices = self._nvml, self._devices, None
            if not devices:
                return
            for dev in devices:
                for g in [dev.gpm, *dev.mig_gpm.values()]:
                    for s in (g.samples if g else ()):
                        self._quiet(n.nvmlGpmSampleFree, s)
                if dev.events is not None:
                    self._quiet(n.nvmlEventSetFree, dev.events)
            self._quiet(n.nvmlShutdown)

    def _quiet(self, fn: Callable, *args: Any) -> None:
        try:
            fn(*args)
        except self._nvml.NVMLError as err:
            log.debug("NVML cleanup: %s", err)

    # -- collection --------------------------------------------------------------------------
    def collect(self) -> Iterable[Point]:
        # The agent runs collect in a thread with a timeout; never pile up behind a stuck call.
        if not self._lock.acquire(blocking=False):
            log.warning("nvml: previous collection still running; skipping this one")
            return []
        try:
            if not self._start():
                return []
            out: list[Point] = []
            seen_pids: set[int] = set()
            for dev in self._devices or ():
                out.extend(self._collect_device(dev, seen_pids))
            for pid in self._proc_cache.keys() - seen_pids:
                del self._proc_cache[pid]
            return out
        finally:
            self._lock.release()

    def _call(self, dev: _Device, name: str, *args: Any, key: tuple = ()) -> Any:
        """NVML `name`(*args), or None when it is unsupported (remembered) or failed this time."""
        k = (name, *key)
        if k in dev.unsupported:
            return None
        fn = getattr(self._nvml, name, None)
        if fn is None:
            dev.unsupported.add(k)
            return None
        try:
            return fn(*args)
        except self._nvml.NVMLError as err:
            code = getattr(err, "value", None)
            if code in _LOST:
                raise _Lost(str(err)) from None
            if code in _PERMANENT:
                dev.unsupported.add(k)
                log.debug("gpu%d: %s%s unsupported (%s); not asked again", dev.index, name, key, err)
            elif code != _NOT_FOUND:
                log.debug("gpu%d: %s%s failed: %s", dev.index, name, key, err)
            return None

    def _collect_device(self, dev: _Device, seen_pids: set[int]) -> list[Point]:
        out: list[Point] = []
        try:
            if dev.handle is None:
                dev.handle = self._nvml.nvmlDeviceGetHandleByIndex(dev.index)
            if not dev.described:
                self._describe(dev)
            state = self._read(dev, out, seen_pids)
            if dev.lost:
                log.warning("gpu%d (%s) answers again", dev.index, dev.attrs["hw.id"])
                dev.lost = False
        except (_Lost, self._nvml.NVMLError) as err:
            if not dev.attrs:
                dev.attrs = {"hw.id": f"gpu{dev.index}", "hw.type": "gpu", "hw.name": f"gpu{dev.index}"}
            if not dev.lost:
                log.warning("gpu%d (%s) is not answering: %s", dev.index, dev.attrs["hw.id"], err)
                dev.lost = True
            out = []
            state = "failed"
        for s in _STATES:
            out.append(M.STATUS.point(1 if s == state else 0, {**dev.attrs, "hw.state": s, **dev.identity}))
        return out

    def _describe(self, dev: _Device) -> None:
        n, h, call = self._nvml, dev.handle, self._call
        uuid = call(dev, "nvmlDeviceGetUUID", h)
        dev.attrs = {"hw.id": _text(uuid) if uuid else f"gpu{dev.index}", "hw.type": "gpu",
                     "hw.name": f"gpu{dev.index}"}
        ident = {"hw.vendor": "NVIDIA", "hw.driver_version": self._driver}
        for attr, fn in (("hw.model", "nvmlDeviceGetName"), ("hw.serial_number", "nvmlDeviceGetSerial"),
                         ("hw.firmware_version", "nvmlDeviceGetVbiosVersion")):
            v = call(dev, fn, h)
            if v:
                ident[attr] = _text(v)
        pci = call(dev, "nvmlDeviceGetPciInfo", h)
        if pci is not None:
            ident["infersight.gpu.pci_bus_id"] = _text(pci.busId)
        dev.identity = ident
        for domain, const in (("sm", "NVML_CLOCK_SM"), ("memory", "NVML_CLOCK_MEM")):
            v = call(dev, "nvmlDeviceGetMaxClockInfo", h, getattr(n, const), key=(domain,))
            if v:
                dev.max_clocks[domain] = v
        dev.described = True

    def _read(self, dev: _Device, out: list[Point], seen_pids: set[int]) -> str:
        """Append the device's points to `out`; return its hw.state."""
        n, h, a = self._nvml, dev.handle, dev.attrs

        def call(name: str, *args: Any, key: tuple = ()) -> Any:
            return self._call(dev, name, *args, key=key)

        degraded = failed = False
        u = call("nvmlDeviceGetUtilizationRates", h)
        if u is not None:
            out.append(M.UTIL.point(u.gpu / 100, {**a, "hw.gpu.task": "general"}))
            out.append(M.MEMCTL_UTIL.point(u.memory / 100, a))
        for task, fn in (("encoder", "nvmlDeviceGetEncoderUtilization"),
                         ("decoder", "nvmlDeviceGetDecoderUtilization")):
            r = call(fn, h)
            if r is not None:
                out.append(M.UTIL.point(r[0] / 100, {**a, "hw.gpu.task": task}))
        self._memory(dev, h, a, out)

        if (mw := call("nvmlDeviceGetPowerUsage", h)) is not None:
            out.append(M.POWER.point(mw / 1000, a))
        if (mw := call("nvmlDeviceGetEnforcedPowerLimit", h)) is not None:
            out.append(M.POWER_LIMIT.point(mw / 1000, a))
        if (mj := call("nvmlDeviceGetTotalEnergyConsumption", h)) is not None:
            out.append(M.ENERGY.point(mj / 1000, a))
        if (c := call("nvmlDeviceGetTemperature", h, n.NVML_TEMPERATURE_GPU)) is not None:
            out.append(M.TEMP.point(c, {**a, "hw.sensor_location": "gpu"}))
        if (c := self._memory_temperature(dev)) is not None:
            out.append(M.TEMP.point(c, {**a, "hw.sensor_location": "memory"}))
        for domain, const in (("sm", "NVML_CLOCK_SM"), ("memory", "NVML_CLOCK_MEM")):
            attrs = {**a, "infersight.gpu.clock": domain}
            if (mhz := call("nvmlDeviceGetClockInfo", h, getattr(n, const), key=(domain,))) is not None:
                out.append(M.CLOCK.point(mhz * 1e6, attrs))
            if domain in dev.max_clocks:
                out.append(M.CLOCK_MAX.point(dev.max_clocks[domain] * 1e6, attrs))
        reasons = call("nvmlDeviceGetCurrentClocksEventReasons", h)
        if reasons is None:  # bindings and drivers before the rename
            reasons = call("nvmlDeviceGetCurrentClocksThrottleReasons", h)
        if reasons is not None:
            for bit, name in M.CLOCK_EVENT_REASONS:
                out.append(M.CLOCK_EVENT.point(1 if reasons & bit else 0,
                                               {**a, "infersight.gpu.clock.event_reason": name}))
            degraded |= bool(reasons & M.HW_SLOWDOWN_MASK)
        if (p := call("nvmlDeviceGetPerformanceState", h)) is not None:
            out.append(M.PSTATE.point(p, a))
        if (g := call("nvmlDeviceGetCurrPcieLinkGeneration", h)) is not None:
            out.append(M.PCIE_GEN.point(g, a))
        if (w := call("nvmlDeviceGetCurrPcieLinkWidth", h)) is not None:
            out.append(M.PCIE_WIDTH.point(w, a))

        degraded |= self._ecc(dev, out)
        rows = call("nvmlDeviceGetRemappedRows", h)
        if rows is not None:
            corr, unc, pending, failure = rows
            out.append(M.REMAPPED.point(corr, {**a, "infersight.gpu.remap.cause": "correctable"}))
            out.append(M.REMAPPED.point(unc, {**a, "infersight.gpu.remap.cause": "uncorrectable"}))
            out.append(M.REMAP_PENDING.point(int(bool(pending)), a))
            out.append(M.REMAP_FAILURE.point(int(bool(failure)), a))
            degraded |= bool(pending)
            failed |= bool(failure)
        if self._nvlink_on:
            self._nvlink(dev, out)
        if self._xid_on:
            xid_state = self._xids(dev, out)
            degraded |= xid_state == "degraded"
            failed |= xid_state == "failed"

        mig = self._mig(dev, out) if self._mig_on else {}
        gpm_done = False
        if self._gpm_on and not mig:
            if not dev.gpm_checked:
                dev.gpm = self._gpm_setup(dev)
                dev.gpm_checked = True
            if dev.gpm is not None:
                gpm_done = self._gpm_read(dev, dev.gpm, a, out,
                                          lambda s: n.nvmlGpmSampleGet(h, s))
        if not gpm_done:  # GPM gives PCIe bytes; without it, NVML's 20 ms throughput sample
            for direction, const in (("transmit", "NVML_PCIE_UTIL_TX_BYTES"),
                                     ("receive", "NVML_PCIE_UTIL_RX_BYTES")):
                kbs = call("nvmlDeviceGetPcieThroughput", h, getattr(n, const), key=(direction,))
                if kbs is not None:
                    out.append(M.PCIE_THROUGHPUT.point(kbs * _KIB, {**a, "network.io.direction": direction}))
        if self._procs_on:
            self._processes(dev, out, mig, seen_pids)
        return "failed" if failed else "degraded" if degraded else "ok"

    def _memory(self, dev: _Device, h: Any, a: dict, out: list[Point], mig: bool = False) -> None:
        """Memory points; the v2 query separates driver-reserved memory (as nvidia-smi does)."""
        v2 = getattr(self._nvml, "nvmlMemory_v2", None)
        m = self._call(dev, "nvmlDeviceGetMemoryInfo", h, v2, key=("v2", mig)) if v2 else None
        reserved = getattr(m, "reserved", None) if m is not None else None
        if m is None:
            m = self._call(dev, "nvmlDeviceGetMemoryInfo", h, key=("v1", mig))
        if m is None:
            return
        out.append(M.MEM_USAGE.point(m.used, a))
        out.append(M.MEM_LIMIT.point(m.total, a))
        out.append(M.MEM_FREE.point(m.free, a))
        if m.total:
            out.append(M.MEM_UTIL.point(m.used / m.total, a))
        if reserved is not None and not mig:
            out.append(M.MEM_RESERVED.point(reserved, a))

    def _memory_temperature(self, dev: _Device) -> float | None:
        n = self._nvml
        const = getattr(n, "NVML_FI_DEV_MEMORY_TEMP", None)
        if const is None:
            return None
        values = self._call(dev, "nvmlDeviceGetFieldValues", dev.handle, [const], key=("memtemp",))
        if not values:
            return None
        fv = values[0]
        if fv.nvmlReturn != 0:
            if fv.nvmlReturn in _PERMANENT:
                dev.unsupported.add(("nvmlDeviceGetFieldValues", "memtemp"))
            return None
        member = _VALUE_MEMBERS.get(fv.valueType)
        return None if member is None else float(getattr(fv.value, member))

    def _ecc(self, dev: _Device, out: list[Point]) -> bool:
        """ECC counters; True when new uncorrected errors appeared since the previous collect."""
        n, h, a = self._nvml, dev.handle, dev.attrs
        new_uncorrected = False
        for etype, const in (("ecc_corrected", "NVML_MEMORY_ERROR_TYPE_CORRECTED"),
                             ("ecc_uncorrected", "NVML_MEMORY_ERROR_TYPE_UNCORRECTED")):
            kind = getattr(n, const)
            vol = self._call(dev, "nvmlDeviceGetTotalEccErrors", h, kind, n.NVML_VOLATILE_ECC,
                             key=(etype, "volatile"))
            if vol is not None:
                out.append(M.ERRORS.point(vol, {**a, "error.type": etype}))
                if etype == "ecc_uncorrected":
                    new_uncorrected = dev.ecc_uncorrected is not None and vol > dev.ecc_uncorrected
                    dev.ecc_uncorrected = vol
            agg = self._call(dev, "nvmlDeviceGetTotalEccErrors", h, kind, n.NVML_AGGREGATE_ECC,
                             key=(etype, "aggregate"))
            if agg is not None:
                out.append(M.ECC_AGGREGATE.point(agg, {**a, "error.type": etype}))
        return new_uncorrected

    def _nvlink(self, dev: _Device, out: list[Point]) -> None:
        n, h, a = self._nvml, dev.handle, dev.attrs
        if dev.nvlinks is None:  # discover once: links past the last answer INVALID_ARGUMENT
            dev.nvlinks = []
            for link in range(getattr(n, "NVML_NVLINK_MAX_LINKS", 18)):
                try:
                    n.nvmlDeviceGetNvLinkState(h, link)
                except n.NVMLError as err:
                    if getattr(err, "value", None) in _LOST:
                        raise _Lost(str(err)) from None
                    if getattr(err, "value", None) == _INVALID_ARGUMENT:
                        break
                    continue
                dev.nvlinks.append(link)
        counters = (("nvlink_replay", "NVML_NVLINK_ERROR_DL_REPLAY"),
                    ("nvlink_recovery", "NVML_NVLINK_ERROR_DL_RECOVERY"),
                    ("nvlink_crc_flit", "NVML_NVLINK_ERROR_DL_CRC_FLIT"),
                    ("nvlink_crc_data", "NVML_NVLINK_ERROR_DL_CRC_DATA"))
        for link in dev.nvlinks:
            la = {**a, "infersight.gpu.nvlink.link": link}
            state = self._call(dev, "nvmlDeviceGetNvLinkState", h, link, key=(link,))
            if state is not None:
                out.append(M.NVLINK_STATE.point(int(bool(state)), la))
            for etype, const in counters:
                v = self._call(dev, "nvmlDeviceGetNvLinkErrorCounter", h, link, getattr(n, const),
                               key=(link, etype))
                if v is not None:
                    out.append(M.ERRORS.point(v, {**la, "error.type": etype}))

    def _xids(self, dev: _Device, out: list[Point]) -> str:
        """Drain the device's XID events: counters by code, the last code of this interval."""
        n, a = self._nvml, dev.attrs
        if not dev.events_checked:
            dev.events_checked = True
            es = self._call(dev, "nvmlEventSetCreate")
            if es is not None:
                try:
                    n.nvmlDeviceRegisterEvents(dev.handle, n.nvmlEventTypeXidCriticalError, es)
                    dev.events, dev.xid_start_ns = es, time.time_ns()
                except n.NVMLError as err:
                    log.info("gpu%d: XID events unavailable: %s", dev.index, err)
                    self._quiet(n.nvmlEventSetFree, es)
        if dev.events is None:
            return "ok"
        state, last = "ok", 0
        for _ in range(_MAX_EVENTS_PER_COLLECT):
            try:
                ev = n.nvmlEventSetWait(dev.events, 0)
            except n.NVMLError as err:
                if getattr(err, "value", None) in _LOST:
                    raise _Lost(str(err)) from None
                break  # NVML_ERROR_TIMEOUT: nothing pending
            code = int(ev.eventData)
            dev.xid_counts[code] = dev.xid_counts.get(code, 0) + 1
            last = code
            log.warning("gpu%d (%s): XID %d", dev.index, a["hw.id"], code)
            if code in M.XID_FAILED:
                state = "failed"
            elif code in M.XID_DEGRADED and state == "ok":
                state = "degraded"
        for code, count in sorted(dev.xid_counts.items()):
            out.append(M.ERRORS.point(count, {**a, "error.type": "xid", "hw.gpu.xid": code},
                                      start_time_ns=dev.xid_start_ns))
        out.append(M.XID_LAST.point(last, a))
        return state

    # -- GPM ---------------------------------------------------------------------------------
    def _gpm_setup(self, dev: _Device) -> _Gpm | None:
        support = self._call(dev, "nvmlGpmQueryDeviceSupport", dev.handle)
        if support is None or not support.isSupportedDevice or not self._gpm_ids:
            return None
        return self._gpm_alloc(dev)

    def _gpm_alloc(self, dev: _Device) -> _Gpm | None:
        try:
            return _Gpm(samples=[self._nvml.nvmlGpmSampleAlloc(), self._nvml.nvmlGpmSampleAlloc()])
        except self._nvml.NVMLError as err:
            log.info("gpu%d: GPM unavailable: %s", dev.index, err)
            return None

    def _gpm_read(self, dev: _Device, g: _Gpm, a: dict, out: list[Point],
                  take: Callable[[Any], Any]) -> bool:
        """Take a sample; with the previous one, emit GPM points. False when there was nothing."""
        n = self._nvml
        cur = g.samples[1] if g.prev is g.samples[0] else g.samples[0]
        try:
            take(cur)
        except n.NVMLError as err:
            if getattr(err, "value", None) in _LOST:
                raise _Lost(str(err)) from None
            log.debug("gpu%d: GPM sample failed: %s", dev.index, err)
            g.prev = None
            return False
        now = self._clock()
        prev, prev_t = g.prev, g.prev_t
        g.prev, g.prev_t = cur, now
        if prev is None:
            g.io_start_ns = g.io_start_ns or time.time_ns()
            return False
        values = self._gpm_metrics(prev, cur)
        if values is None:
            return False
        for name, spec, extra in M.GPM_GAUGES:
            if name in values:
                out.append(spec.point(values[name] / 100, {**a, **extra}))
        dt = now - prev_t
        for name, extra in M.GPM_RATES:
            if name in values:
                k = (extra["network.io.direction"], extra["infersight.gpu.link"])
                g.io_bytes[k] = g.io_bytes.get(k, 0.0) + values[name] * _MIB * dt
        for (direction, link), total in sorted(g.io_bytes.items()):
            out.append(M.IO.point(round(total), {**a, "network.io.direction": direction,
                                                 "infersight.gpu.link": link}, start_time_ns=g.io_start_ns))
        return True

    def _gpm_metrics(self, s1: Any, s2: Any) -> dict[str, float] | None:
        n = self._nvml
        mg = n.c_nvmlGpmMetricsGet_t()
        mg.version = n.NVML_GPM_METRICS_GET_VERSION
        mg.numMetrics = len(self._gpm_ids)
        mg.sample1, mg.sample2 = s1, s2
        for i, (mid, _name) in enumerate(self._gpm_ids):
            mg.metrics[i].metricId = mid
        try:
            n.nvmlGpmMetricsGet(mg)
        except n.NVMLError as err:
            if getattr(err, "value", None) in _LOST:
                raise _Lost(str(err)) from None
            log.debug("GPM metrics failed: %s", err)
            return None
        return {name: mg.metrics[i].value for i, (_mid, name) in enumerate(self._gpm_ids)
                if mg.metrics[i].nvmlReturn == 0}

    # -- MIG and processes -------------------------------------------------------------------
    def _mig(self, dev: _Device, out: list[Point]) -> dict[int, dict[str, Any]]:
        """Points per MIG instance; returns the instances' attributes by GPU-instance id."""
        n, h = self._nvml, dev.handle
        mode = self._call(dev, "nvmlDeviceGetMigMode", h)
        if not mode or mode[0] != getattr(n, "NVML_DEVICE_MIG_ENABLE", 1):
            return {}
        found: dict[int, dict[str, Any]] = {}
        for i in range(self._call(dev, "nvmlDeviceGetMaxMigDeviceCount", h) or 0):
            try:
                mh = n.nvmlDeviceGetMigDeviceHandleByIndex(h, i)
            except n.NVMLError as err:
                if getattr(err, "value", None) in _LOST:
                    raise _Lost(str(err)) from None
                continue  # NOT_FOUND: no instance in this slot
            gi = self._call(dev, "nvmlDeviceGetGpuInstanceId", mh, key=("mig",))
            ci = self._call(dev, "nvmlDeviceGetComputeInstanceId", mh, key=("mig",))
            uuid = self._call(dev, "nvmlDeviceGetUUID", mh, key=("mig",))
            if gi is None or uuid is None:
                continue
            ma = {"hw.id": _text(uuid), "hw.type": "gpu", "hw.name": f"{dev.attrs['hw.name']}/mig{gi}",
                  "hw.parent": dev.attrs["hw.id"], "infersight.gpu.mig.gpu_instance_id": gi,
                  "infersight.gpu.mig.compute_instance_id": ci if ci is not None else 0}
            found[gi] = ma
            self._memory(dev, mh, ma, out, mig=True)
            if self._gpm_on:
                g = dev.mig_gpm.get(gi)
                if g is None and ("gpm", gi) not in dev.unsupported:
                    g = dev.mig_gpm[gi] = self._gpm_alloc(dev)
                    if g is None:
                        dev.unsupported.add(("gpm", gi))
                if g is not None:
                    self._gpm_read(dev, g, ma, out, lambda s, gi=gi: n.nvmlGpmMigSampleGet(h, gi, s))
        return found

    def _processes(self, dev: _Device, out: list[Point], mig: dict[int, dict[str, Any]],
                   seen_pids: set[int]) -> None:
        h, a = dev.handle, dev.attrs
        for p in self._call(dev, "nvmlDeviceGetComputeRunningProcesses", h) or ():
            seen_pids.add(p.pid)
            base = mig.get(getattr(p, "gpuInstanceId", _NO_MIG_INSTANCE), a)
            if p.usedGpuMemory is not None:
                out.append(M.PROC_MEMORY.point(p.usedGpuMemory, {**base, **self._owner(p.pid)}))
        samples = self._call(dev, "nvmlDeviceGetProcessUtilization", h, dev.proc_ts, key=())
        latest: dict[int, Any] = {}
        for s in samples or ():
            if s.pid not in latest or s.timeStamp > latest[s.pid].timeStamp:
                latest[s.pid] = s
        for pid, s in latest.items():
            seen_pids.add(pid)
            dev.proc_ts = max(dev.proc_ts, s.timeStamp)
            pa = {**a, **self._owner(pid)}
            out.append(M.PROC_UTIL.point(s.smUtil / 100, {**pa, "hw.gpu.task": "general"}))
            out.append(M.PROC_MEMCTL_UTIL.point(s.memUtil / 100, pa))
            for task, v in (("encoder", s.encUtil), ("decoder", s.decUtil)):
                if v:
                    out.append(M.PROC_UTIL.point(v / 100, {**pa, "hw.gpu.task": task}))

    def _owner(self, pid: int) -> dict[str, Any]:
        attrs = self._proc_cache.get(pid)
        if attrs is None:
            attrs = self._proc_cache[pid] = {"process.pid": pid,
                                             **process_attributes(self._proc_root, pid)}
        return attrs
