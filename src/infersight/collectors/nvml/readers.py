"""Readers for the GPU-wide families: engine utilisation, memory, power, temperature, clocks, PCIe.

Each reader appends its points to `out` and returns the health verdict of what it read (most say
nothing about health: "ok"). The session calls them in a fixed order, see `session.READERS`.
"""
from __future__ import annotations

from typing import Any

from infersight.collectors.base import Point
from infersight.collectors.hw import HwState
from infersight.collectors.nvml import health
from infersight.collectors.nvml import metrics as M
from infersight.collectors.nvml.device import PERMANENT, Device, Nvml

_KIB = 1024
# nvmlValueType_t -> the member of the nvmlValue_t union that holds it
_VALUE_MEMBERS = {0: "dVal", 1: "uiVal", 2: "ulVal", 3: "ullVal", 4: "sllVal", 5: "siVal", 6: "usVal"}


def utilization(nv: Nvml, dev: Device, out: list[Point]) -> HwState:
    """Graphics/compute, memory-controller, encoder and decoder busy shares."""
    h, a = dev.handle, dev.attrs
    u = nv.call(dev, "nvmlDeviceGetUtilizationRates", h)
    if u is not None:
        out.append(M.UTIL.point(u.gpu / 100, {**a, "hw.gpu.task": "general"}))
        out.append(M.MEMCTL_UTIL.point(u.memory / 100, a))
    for task, fn in (("encoder", "nvmlDeviceGetEncoderUtilization"),
                     ("decoder", "nvmlDeviceGetDecoderUtilization")):
        r = nv.call(dev, fn, h)
        if r is not None:
            out.append(M.UTIL.point(r[0] / 100, {**a, "hw.gpu.task": task}))
    return "ok"


def device_memory(nv: Nvml, dev: Device, out: list[Point]) -> HwState:
    memory(nv, dev, dev.handle, dev.attrs, out)
    return "ok"


def memory(nv: Nvml, dev: Device, h: Any, a: dict, out: list[Point], mig: bool = False) -> None:
    """Memory points of a GPU or MIG handle; the v2 query separates driver-reserved memory (as nvidia-smi)."""
    v2 = getattr(nv.n, "nvmlMemory_v2", None)
    m = nv.call(dev, "nvmlDeviceGetMemoryInfo", h, v2, key=("v2", mig)) if v2 else None
    reserved = getattr(m, "reserved", None) if m is not None else None
    if m is None:
        m = nv.call(dev, "nvmlDeviceGetMemoryInfo", h, key=("v1", mig))
    if m is None:
        return
    out.append(M.MEM_USAGE.point(m.used, a))
    out.append(M.MEM_LIMIT.point(m.total, a))
    out.append(M.MEM_FREE.point(m.free, a))
    if m.total:
        out.append(M.MEM_UTIL.point(m.used / m.total, a))
    if reserved is not None and not mig:
        out.append(M.MEM_RESERVED.point(reserved, a))


def power(nv: Nvml, dev: Device, out: list[Point]) -> HwState:
    """Power draw, enforced limit and energy since the driver loaded (NVML reports mW and mJ)."""
    h, a = dev.handle, dev.attrs
    if (mw := nv.call(dev, "nvmlDeviceGetPowerUsage", h)) is not None:
        out.append(M.POWER.point(mw / 1000, a))
    if (mw := nv.call(dev, "nvmlDeviceGetEnforcedPowerLimit", h)) is not None:
        out.append(M.POWER_LIMIT.point(mw / 1000, a))
    if (mj := nv.call(dev, "nvmlDeviceGetTotalEnergyConsumption", h)) is not None:
        out.append(M.ENERGY.point(mj / 1000, a))
    return "ok"


def temperature(nv: Nvml, dev: Device, out: list[Point]) -> HwState:
    """GPU die temperature, and memory temperature where the field value exists (HBM GPUs)."""
    a = dev.attrs
    if (c := nv.call(dev, "nvmlDeviceGetTemperature", dev.handle, nv.n.NVML_TEMPERATURE_GPU)) is not None:
        out.append(M.TEMP.point(c, {**a, "hw.sensor_location": "gpu"}))
    if (c := _memory_temperature(nv, dev)) is not None:
        out.append(M.TEMP.point(c, {**a, "hw.sensor_location": "memory"}))
    return "ok"


def _memory_temperature(nv: Nvml, dev: Device) -> float | None:
    const = getattr(nv.n, "NVML_FI_DEV_MEMORY_TEMP", None)
    if const is None:
        return None
    values = nv.call(dev, "nvmlDeviceGetFieldValues", dev.handle, [const], key=("memtemp",))
    if not values:
        return None
    fv = values[0]
    if fv.nvmlReturn != 0:
        if fv.nvmlReturn in PERMANENT:
            dev.unsupported.add(("nvmlDeviceGetFieldValues", "memtemp"))
        return None
    member = _VALUE_MEMBERS.get(fv.valueType)
    return None if member is None else float(getattr(fv.value, member))


def clocks(nv: Nvml, dev: Device, out: list[Point]) -> HwState:
    """Current and maximum clocks, clock-event (throttle) reasons; degraded on a hardware slowdown."""
    n, h, a = nv.n, dev.handle, dev.attrs
    for domain, const in (("sm", "NVML_CLOCK_SM"), ("memory", "NVML_CLOCK_MEM")):
        attrs = {**a, "infersight.gpu.clock": domain}
        if (mhz := nv.call(dev, "nvmlDeviceGetClockInfo", h, getattr(n, const), key=(domain,))) is not None:
            out.append(M.CLOCK.point(mhz * 1e6, attrs))
        if domain in dev.max_clocks:
            out.append(M.CLOCK_MAX.point(dev.max_clocks[domain] * 1e6, attrs))
    reasons = nv.call(dev, "nvmlDeviceGetCurrentClocksEventReasons", h)
    if reasons is None:  # bindings and drivers before the rename
        reasons = nv.call(dev, "nvmlDeviceGetCurrentClocksThrottleReasons", h)
    if reasons is None:
        return "ok"
    for bit, name in M.CLOCK_EVENT_REASONS:
        out.append(M.CLOCK_EVENT.point(1 if reasons & bit else 0, {**a, "infersight.gpu.clock.event_reason": name}))
    return health.clock_events(reasons)


def pcie_link(nv: Nvml, dev: Device, out: list[Point]) -> HwState:
    """Performance state and the PCIe link's current generation and width."""
    h, a = dev.handle, dev.attrs
    if (p := nv.call(dev, "nvmlDeviceGetPerformanceState", h)) is not None:
        out.append(M.PSTATE.point(p, a))
    if (g := nv.call(dev, "nvmlDeviceGetCurrPcieLinkGeneration", h)) is not None:
        out.append(M.PCIE_GEN.point(g, a))
    if (w := nv.call(dev, "nvmlDeviceGetCurrPcieLinkWidth", h)) is not None:
        out.append(M.PCIE_WIDTH.point(w, a))
    return "ok"


def pcie_throughput(nv: Nvml, dev: Device, out: list[Point]) -> HwState:
    """NVML's 20 ms PCIe throughput sample, when GPM did not give PCIe bytes this collect."""
    if dev.gpm_done:
        return "ok"
    for direction, const in (("transmit", "NVML_PCIE_UTIL_TX_BYTES"), ("receive", "NVML_PCIE_UTIL_RX_BYTES")):
        kbs = nv.call(dev, "nvmlDeviceGetPcieThroughput", dev.handle, getattr(nv.n, const), key=(direction,))
        if kbs is not None:
            out.append(M.PCIE_THROUGHPUT.point(kbs * _KIB, {**dev.attrs, "network.io.direction": direction}))
    return "ok"
