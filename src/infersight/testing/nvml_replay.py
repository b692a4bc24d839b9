"""ReplayNvml: a stand-in for the `pynvml` module that replays a capture from a real GPU.

Public test double (docs/collectors/nvml.md, "Without a GPU"): pass it where the NVML collector
takes its binding, `NvmlCollector(ReplayNvml(load_capture()), clock=replay.clock)`, to run the
real collector on hosts without a GPU, in tests, benchmarks and demos. `load_capture()` returns
the packaged capture (`captures/nvml_h200_phases.json`): a real H200's device facts and 136 timed
samples (idle → bf16 matmul → memcopy → idle) of the NVML calls the collector makes, each as
`{"ok": value}` or `{"err", "code"}`, and the GPM metrics NVML computed between consecutive
samples. Step through it with `seek`/`advance`; `clock` is the capture's own time at the current step.

Where the capture has no answer the replay says so the way NVML would:
- a device function the capture never called answers NVML_ERROR_NOT_SUPPORTED;
- NVLink links past the captured ones answer NVML_ERROR_INVALID_ARGUMENT;
- process-utilisation sampling at a step that did not record it answers NOT_FOUND (no samples).
The capture kept running processes only as object reprs, so a process's pid is the pid that
process-utilisation sampling saw in the same phase, and its memory is unknown (None, as NVML
reports when it cannot tell) unless `process_memory` gives it.

Variants the capture cannot show, each named by a constructor argument or method:
`gpus` (copies of the captured GPU with their own UUIDs), `mig` (MIG instances declared by the
caller, whose GPM values are the parent's captured ones), `lose(i)` (GPU falls off the bus),
`inject_xid(i, code)` (an XID event is pending), `fail_init(code)` (nvmlInit fails, as with a broken
driver, until `fail_init(None)`).
"""
from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from types import SimpleNamespace
from typing import Any

H200_PHASES = "nvml_h200_phases.json"


def load_capture(path: str | Path | None = None) -> dict[str, Any]:
    """A capture for `ReplayNvml`: the JSON file at `path`, or the packaged H200 capture by default."""
    if path is None:
        return json.loads(resources.files("infersight.testing").joinpath("captures", H200_PHASES).read_text())
    return json.loads(Path(path).read_text())


class NVMLError(Exception):
    """Same shape as pynvml's: the NVML return code is `.value`."""

    _names = {2: "Invalid Argument", 3: "Not Supported", 6: "Not Found", 9: "Driver Not Loaded", 10: "Timeout",
              12: "NVML Shared Library Not Found", 15: "GPU is lost"}

    def __init__(self, value: int) -> None:
        super().__init__(value)
        self.value = value

    def __str__(self) -> str:
        return self._names.get(self.value, f"NVML Error with code {self.value}")


@dataclass(frozen=True)
class MigInstance:
    """A MIG instance the replayed GPUs report (declared by the caller, not captured)."""

    gpu_instance_id: int
    compute_instance_id: int
    uuid: str
    memory_total: int
    memory_used: int
    pids: tuple[int, ...] = ()


@dataclass(frozen=True)
class _Handle:
    index: int


@dataclass(frozen=True)
class _MigHandle:
    parent: int
    mig: MigInstance


class _EventSet:
    def __init__(self) -> None:
        self.devices: set[int] = set()


class _GpmSample:
    def __init__(self) -> None:
        self.step: int | None = None


class _GpmMetric:
    __slots__ = ("metricId", "nvmlReturn", "value")

    def __init__(self) -> None:
        self.metricId, self.nvmlReturn, self.value = 0, 0, 0.0


def _obj(v: Any) -> Any:
    return SimpleNamespace(**v) if isinstance(v, dict) else v


# Captured per-sample answers of single-handle device functions.
_SERIES = {"nvmlDeviceGetUtilizationRates": "util", "nvmlDeviceGetPowerUsage": "power_mw",
           "nvmlDeviceGetTotalEnergyConsumption": "energy_mj", "nvmlDeviceGetPerformanceState": "pstate",
           "nvmlDeviceGetCurrentClocksEventReasons": "clocks_event_reasons",
           "nvmlDeviceGetRemappedRows": "remapped_rows", "nvmlDeviceGetFanSpeed": "fan"}


class ReplayNvml:
    """Module-like replay of a pynvml capture (see the module docstring)."""

    NVMLError = NVMLError
    NVML_SUCCESS = 0
    NVML_ERROR_INVALID_ARGUMENT = 2
    NVML_ERROR_NOT_SUPPORTED = 3
    NVML_ERROR_NOT_FOUND = 6
    NVML_ERROR_TIMEOUT = 10
    NVML_ERROR_LIBRARY_NOT_FOUND = 12
    NVML_ERROR_GPU_IS_LOST = 15
    NVML_TEMPERATURE_GPU = 0
    NVML_CLOCK_GRAPHICS, NVML_CLOCK_SM, NVML_CLOCK_MEM = 0, 1, 2
    NVML_PCIE_UTIL_TX_BYTES, NVML_PCIE_UTIL_RX_BYTES = 0, 1
    NVML_MEMORY_ERROR_TYPE_CORRECTED, NVML_MEMORY_ERROR_TYPE_UNCORRECTED = 0, 1
    NVML_VOLATILE_ECC, NVML_AGGREGATE_ECC = 0, 1
    NVML_FI_DEV_MEMORY_TEMP = 82
    NVML_NVLINK_MAX_LINKS = 36
    NVML_NVLINK_ERROR_DL_REPLAY, NVML_NVLINK_ERROR_DL_RECOVERY = 0, 1
    NVML_NVLINK_ERROR_DL_CRC_FLIT, NVML_NVLINK_ERROR_DL_CRC_DATA = 2, 3
    NVML_DEVICE_MIG_ENABLE = 1
    NVML_GPM_METRICS_GET_VERSION = 1
    nvmlMemory_v2 = 0x02000028
    nvmlEventTypeXidCriticalError = 0x8

    def __init__(self, capture: Mapping[str, Any], *, gpus: int | None = None,
                 mig: Sequence[MigInstance] = (), process_memory: Mapping[int, int] | None = None) -> None:
        self._cap = capture
        self._dev = capture["devices"][0]
        self._series = capture["series"]
        self._count = gpus if gpus is not None else capture["count"]
        self._mig = tuple(mig)
        self._process_memory = dict(process_memory or {})
        self._gpm_names = {v: k for k, v in capture["gpm_metric_ids"].items()}
        for name, value in capture["gpm_metric_ids"].items():
            setattr(self, name, value)
        self._phase_pid = self._pids_by_phase()
        self.step = 0
        self.calls: Counter[tuple[str, int]] = Counter()
        self.lost: set[int] = set()
        self._pending_xids: list[tuple[int, int]] = []
        self.init_error: int | None = None
        metric_slots = capture["gpm_metric_ids"].get("NVML_GPM_METRIC_MAX", 210)

        class c_nvmlGpmMetricsGet_t:
            def __init__(self) -> None:
                self.version = self.numMetrics = 0
                self.sample1 = self.sample2 = None
                self.metrics = [_GpmMetric() for _ in range(metric_slots)]

        self.c_nvmlGpmMetricsGet_t = c_nvmlGpmMetricsGet_t

    # -- replay control ----------------------------------------------------------------------
    def seek(self, step: int) -> None:
        if not 0 <= step < len(self._series):
            raise IndexError(f"step {step} outside the capture (0..{len(self._series) - 1})")
        self.step = step

    def advance(self, steps: int = 1) -> None:
        self.seek(self.step + steps)

    def clock(self) -> float:
        """The capture's time (seconds) at the current step."""
        return self._series[self.step]["t"]

    def steps(self, phase: str) -> list[int]:
        return [i for i, s in enumerate(self._series) if s["phase"] == phase]

    def sample(self, step: int | None = None) -> Mapping[str, Any]:
        """The raw captured sample at `step` (default: the current one)."""
        return self._series[self.step if step is None else step]

    def lose(self, index: int) -> None:
        """From now on GPU `index` answers NVML_ERROR_GPU_IS_LOST, as after falling off the bus."""
        self.lost.add(index)

    def fail_init(self, code: int | None = 9) -> None:
        """nvmlInit raises NVMLError(code) (default 9, NVML_ERROR_DRIVER_NOT_LOADED) until fail_init(None)."""
        self.init_error = code

    def inject_xid(self, index: int, code: int) -> None:
        self._pending_xids.append((index, code))

    # -- helpers -----------------------------------------------------------------------------
    def _pids_by_phase(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for s in self._series:
            for p in s.get("proc_util", {}).get("ok", ()):
                out.setdefault(s["phase"], p["pid"])
        return out

    def _enter(self, name: str, handle: Any) -> int:
        index = handle.parent if isinstance(handle, _MigHandle) else handle.index
        self.calls[(name, index)] += 1
        if index in self.lost:
            raise NVMLError(self.NVML_ERROR_GPU_IS_LOST)
        return index

    @staticmethod
    def _answer(rec: Mapping[str, Any]) -> Any:
        if "err" in rec:
            raise NVMLError(rec["code"])
        return _obj(rec["ok"])

    def _now(self, key: str) -> Any:
        return self._answer(self._series[self.step]["dev"][key])

    def __getattr__(self, name: str) -> Any:
        if not name.startswith("nvml"):
            raise AttributeError(name)

        def not_captured(handle: Any = None, *args: Any) -> Any:
            if isinstance(handle, (_Handle, _MigHandle)):
                self._enter(name, handle)
            raise NVMLError(self.NVML_ERROR_NOT_SUPPORTED)

        not_captured.__name__ = name
        return not_captured

    # -- system ------------------------------------------------------------------------------
    def nvmlInit(self) -> None:
        if self.init_error is not None:
            raise NVMLError(self.init_error)

    def nvmlShutdown(self) -> None:
        return None

    def nvmlSystemGetDriverVersion(self) -> str:
        return self._answer(self._cap["driver"])

    def nvmlDeviceGetCount(self) -> int:
        return self._count

    def nvmlDeviceGetHandleByIndex(self, index: int) -> _Handle:
        if not 0 <= index < self._count:
            raise NVMLError(self.NVML_ERROR_INVALID_ARGUMENT)
        if index in self.lost:
            raise NVMLError(self.NVML_ERROR_GPU_IS_LOST)
        return _Handle(index)

    # -- device facts ------------------------------------------------------------------------
    def _static(self, name: str, handle: Any) -> Any:
        self._enter(name, handle)
        if isinstance(handle, _MigHandle) or name not in self._dev:
            raise NVMLError(self.NVML_ERROR_NOT_SUPPORTED)
        return self._answer(self._dev[name])

    def nvmlDeviceGetName(self, h: Any) -> str:
        return self._static("nvmlDeviceGetName", h)

    def nvmlDeviceGetSerial(self, h: Any) -> str:
        return self._static("nvmlDeviceGetSerial", h)

    def nvmlDeviceGetVbiosVersion(self, h: Any) -> str:
        return self._static("nvmlDeviceGetVbiosVersion", h)

    def nvmlDeviceGetPciInfo(self, h: Any) -> Any:
        return self._static("nvmlDeviceGetPciInfo", h)

    def nvmlDeviceGetEnforcedPowerLimit(self, h: Any) -> int:
        return self._static("nvmlDeviceGetEnforcedPowerLimit", h)

    def nvmlDeviceGetCurrPcieLinkGeneration(self, h: Any) -> int:
        return self._static("nvmlDeviceGetCurrPcieLinkGeneration", h)

    def nvmlDeviceGetCurrPcieLinkWidth(self, h: Any) -> int:
        return self._static("nvmlDeviceGetCurrPcieLinkWidth", h)

    def nvmlDeviceGetUUID(self, h: Any) -> str:
        self._enter("nvmlDeviceGetUUID", h)
        if isinstance(h, _MigHandle):
            return h.mig.uuid
        uuid = self._answer(self._dev["nvmlDeviceGetUUID"])
        return uuid if h.index == 0 else f"{uuid[:-4]}{h.index:04x}"

    def nvmlDeviceGetMaxClockInfo(self, h: Any, clock: int) -> int:
        self._enter("nvmlDeviceGetMaxClockInfo", h)
        domain = {0: "graphics", 1: "sm", 2: "mem"}.get(clock)
        rec = self._dev["nvmlDeviceGetMaxClockInfo"].get(domain)
        if rec is None:
            raise NVMLError(self.NVML_ERROR_INVALID_ARGUMENT)
        return self._answer(rec)

    def nvmlDeviceGetEccMode(self, h: Any) -> list[int]:
        self._enter("nvmlDeviceGetEccMode", h)
        return self._answer(self._dev["ecc_mode"])

    def nvmlGpmQueryDeviceSupport(self, h: Any) -> Any:
        self._enter("nvmlGpmQueryDeviceSupport", h)
        return self._answer(self._dev["gpm_support"])

    def nvmlDeviceGetNvLinkState(self, h: Any, link: int) -> int:
        self._enter("nvmlDeviceGetNvLinkState", h)
        rec = self._dev["nvlink"].get(str(link))
        if rec is None:
            raise NVMLError(self.NVML_ERROR_INVALID_ARGUMENT)
        return self._answer(rec)

    # -- per-sample readings -----------------------------------------------------------------
    def _sampled(self, name: str, h: Any) -> Any:
        self._enter(name, h)
        if isinstance(h, _MigHandle):
            raise NVMLError(self.NVML_ERROR_NOT_SUPPORTED)
        return self._now(_SERIES[name])

    def nvmlDeviceGetUtilizationRates(self, h: Any) -> Any:
        return self._sampled("nvmlDeviceGetUtilizationRates", h)

    def nvmlDeviceGetPowerUsage(self, h: Any) -> int:
        return self._sampled("nvmlDeviceGetPowerUsage", h)

    def nvmlDeviceGetTotalEnergyConsumption(self, h: Any) -> int:
        return self._sampled("nvmlDeviceGetTotalEnergyConsumption", h)

    def nvmlDeviceGetPerformanceState(self, h: Any) -> int:
        return self._sampled("nvmlDeviceGetPerformanceState", h)

    def nvmlDeviceGetCurrentClocksEventReasons(self, h: Any) -> int:
        return self._sampled("nvmlDeviceGetCurrentClocksEventReasons", h)

    def nvmlDeviceGetRemappedRows(self, h: Any) -> tuple[int, int, int, int]:
        return tuple(self._sampled("nvmlDeviceGetRemappedRows", h))

    def nvmlDeviceGetFanSpeed(self, h: Any) -> int:
        return self._sampled("nvmlDeviceGetFanSpeed", h)

    def nvmlDeviceGetMemoryInfo(self, h: Any, version: int | None = None) -> Any:
        self._enter("nvmlDeviceGetMemoryInfo", h)
        if isinstance(h, _MigHandle):
            m = h.mig
            return SimpleNamespace(total=m.memory_total, used=m.memory_used,
                                   free=m.memory_total - m.memory_used, reserved=0)
        return self._now("mem_v2" if version else "mem")

    def nvmlDeviceGetTemperature(self, h: Any, sensor: int) -> int:
        self._enter("nvmlDeviceGetTemperature", h)
        if sensor != self.NVML_TEMPERATURE_GPU:
            raise NVMLError(self.NVML_ERROR_NOT_SUPPORTED)
        return self._now("temp_c")

    def nvmlDeviceGetClockInfo(self, h: Any, clock: int) -> int:
        self._enter("nvmlDeviceGetClockInfo", h)
        key = {self.NVML_CLOCK_SM: "clock_sm", self.NVML_CLOCK_MEM: "clock_mem"}.get(clock)
        if key is None:
            raise NVMLError(self.NVML_ERROR_NOT_SUPPORTED)
        return self._now(key)

    def nvmlDeviceGetPcieThroughput(self, h: Any, counter: int) -> int:
        self._enter("nvmlDeviceGetPcieThroughput", h)
        return self._now("pcie_tx_kbs" if counter == self.NVML_PCIE_UTIL_TX_BYTES else "pcie_rx_kbs")

    def nvmlDeviceGetTotalEccErrors(self, h: Any, error_type: int, counter_type: int) -> int:
        self._enter("nvmlDeviceGetTotalEccErrors", h)
        if counter_type != self.NVML_VOLATILE_ECC:  # only volatile counts were captured
            raise NVMLError(self.NVML_ERROR_NOT_SUPPORTED)
        return self._now("ecc_volatile_corrected" if error_type == self.NVML_MEMORY_ERROR_TYPE_CORRECTED
                         else "ecc_volatile_uncorrected")

    # -- processes ---------------------------------------------------------------------------
    def nvmlDeviceGetComputeRunningProcesses(self, h: Any) -> list[Any]:
        self._enter("nvmlDeviceGetComputeRunningProcesses", h)
        procs = self._now("procs")
        pid = self._phase_pid.get(self._series[self.step]["phase"])
        out = []
        for _ in procs:
            if pid is None:
                continue
            gi = next((m.gpu_instance_id for m in self._mig if pid in m.pids), 0xFFFFFFFF)
            ci = next((m.compute_instance_id for m in self._mig if pid in m.pids), 0xFFFFFFFF)
            out.append(SimpleNamespace(pid=pid, usedGpuMemory=self._process_memory.get(pid),
                                       gpuInstanceId=gi, computeInstanceId=ci))
        return out

    def nvmlDeviceGetProcessUtilization(self, h: Any, last_seen: int) -> list[Any]:
        self._enter("nvmlDeviceGetProcessUtilization", h)
        rec = self._series[self.step].get("proc_util")
        if rec is None:
            raise NVMLError(self.NVML_ERROR_NOT_FOUND)
        samples = [s for s in self._answer(rec) if s["timeStamp"] > last_seen]
        if not samples:
            raise NVMLError(self.NVML_ERROR_NOT_FOUND)
        return [SimpleNamespace(**s) for s in samples]

    # -- MIG ---------------------------------------------------------------------------------
    def nvmlDeviceGetMigMode(self, h: Any) -> list[int]:
        self._enter("nvmlDeviceGetMigMode", h)
        if self._mig:
            return [1, 1]
        return self._answer(self._dev["nvmlDeviceGetMigMode"])

    def nvmlDeviceGetMaxMigDeviceCount(self, h: Any) -> int:
        self._enter("nvmlDeviceGetMaxMigDeviceCount", h)
        return 7 if self._mig else 0

    def nvmlDeviceGetMigDeviceHandleByIndex(self, h: Any, index: int) -> _MigHandle:
        self._enter("nvmlDeviceGetMigDeviceHandleByIndex", h)
        if index >= len(self._mig):
            raise NVMLError(self.NVML_ERROR_NOT_FOUND)
        return _MigHandle(h.index, self._mig[index])

    def nvmlDeviceGetGpuInstanceId(self, h: Any) -> int:
        self._enter("nvmlDeviceGetGpuInstanceId", h)
        if not isinstance(h, _MigHandle):
            raise NVMLError(self.NVML_ERROR_NOT_SUPPORTED)
        return h.mig.gpu_instance_id

    def nvmlDeviceGetComputeInstanceId(self, h: Any) -> int:
        self._enter("nvmlDeviceGetComputeInstanceId", h)
        if not isinstance(h, _MigHandle):
            raise NVMLError(self.NVML_ERROR_NOT_SUPPORTED)
        return h.mig.compute_instance_id

    # -- events ------------------------------------------------------------------------------
    def nvmlEventSetCreate(self) -> _EventSet:
        return _EventSet()

    def nvmlDeviceRegisterEvents(self, h: Any, event_types: int, event_set: _EventSet) -> None:
        self._enter("nvmlDeviceRegisterEvents", h)
        self._answer({"ok": None} if self._cap.get("xid_events") == "registered"
                     else {"err": "Not Supported", "code": self.NVML_ERROR_NOT_SUPPORTED})
        event_set.devices.add(h.index)

    def nvmlEventSetWait(self, event_set: _EventSet, timeout_ms: int) -> Any:
        for i, (index, code) in enumerate(self._pending_xids):
            if index in event_set.devices:
                del self._pending_xids[i]
                return SimpleNamespace(device=_Handle(index), eventType=self.nvmlEventTypeXidCriticalError,
                                       eventData=code, gpuInstanceId=0xFFFFFFFF, computeInstanceId=0xFFFFFFFF)
        raise NVMLError(self.NVML_ERROR_TIMEOUT)  # the capture's wait: "Timeout"

    def nvmlEventSetFree(self, event_set: _EventSet) -> None:
        event_set.devices.clear()

    # -- GPM ---------------------------------------------------------------------------------
    def nvmlGpmSampleAlloc(self) -> _GpmSample:
        return _GpmSample()

    def nvmlGpmSampleFree(self, sample: _GpmSample) -> None:
        sample.step = None

    def nvmlGpmSampleGet(self, h: Any, sample: _GpmSample) -> _GpmSample:
        self._enter("nvmlGpmSampleGet", h)
        sample.step = self.step
        return sample

    def nvmlGpmMigSampleGet(self, h: Any, gpu_instance_id: int, sample: _GpmSample) -> _GpmSample:
        self._enter("nvmlGpmMigSampleGet", h)
        if not any(m.gpu_instance_id == gpu_instance_id for m in self._mig):
            raise NVMLError(self.NVML_ERROR_NOT_FOUND)
        sample.step = self.step
        return sample

    def nvmlGpmMetricsGet(self, mg: Any) -> Any:
        """Time-weighted mean of the captured per-interval values between the two samples' steps.

        NVML derives GPM metrics from hardware counters read at the two samples, which is that
        mean. Two samples at the same step get the captured interval that ends there.
        """
        a, b = mg.sample1.step, mg.sample2.step
        if a is None or b is None:
            raise NVMLError(self.NVML_ERROR_INVALID_ARGUMENT)
        window = range(a + 1, b + 1) if b > a else range(b, b + 1)
        for m in mg.metrics[:mg.numMetrics]:
            name = self._gpm_names.get(m.metricId)
            total = weight = 0.0
            rc = self.NVML_ERROR_NOT_SUPPORTED
            for i in window:
                rec = self._series[i].get("gpm", {}).get(name)
                if rec is None:
                    continue
                rc = rec["rc"]
                if rc:
                    break
                dt = self._series[i]["t"] - self._series[i - 1]["t"] if i else 1.0
                total += rec["value"] * dt
                weight += dt
            m.nvmlReturn = rc
            m.value = total / weight if not rc and weight else 0.0
        return mg
