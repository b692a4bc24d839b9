"""GPM (Hopper and newer) profiling metrics: SM, tensor-pipe and DRAM activity, PCIe/NVLink bytes.

NVML computes GPM metrics from two samples; the collector keeps two buffers per GPU (and per MIG
instance) and computes between consecutive collects, so values start with the second collect.
The byte rates are integrated into `hw.gpu.io` counters.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from infersight.collectors.base import Point
from infersight.collectors.hw import HwState
from infersight.collectors.nvml import metrics as M
from infersight.collectors.nvml.device import Device, GpmBuffers, Nvml

log = logging.getLogger(__name__)

_MIB = 1024 * 1024


def device_gpm(nv: Nvml, dev: Device, out: list[Point]) -> HwState:
    """GPU-wide GPM points (skipped in MIG mode, where `mig` reads them per instance)."""
    dev.gpm_done = False
    if dev.mig:
        return "ok"
    if not dev.gpm_checked:
        dev.gpm = _setup(nv, dev)
        dev.gpm_checked = True
    if dev.gpm is not None:
        h = dev.handle
        dev.gpm_done = read(nv, dev, dev.gpm, dev.attrs, out, lambda s: nv.n.nvmlGpmSampleGet(h, s))
    return "ok"


def _setup(nv: Nvml, dev: Device) -> GpmBuffers | None:
    support = nv.call(dev, "nvmlGpmQueryDeviceSupport", dev.handle)
    if support is None or not support.isSupportedDevice or not nv.gpm_ids:
        return None
    return alloc(nv, dev)


def alloc(nv: Nvml, dev: Device) -> GpmBuffers | None:
    """Two sample buffers, or None where GPM cannot allocate them."""
    try:
        return GpmBuffers(samples=[nv.n.nvmlGpmSampleAlloc(), nv.n.nvmlGpmSampleAlloc()])
    except nv.n.NVMLError as err:
        log.info("gpu%d: GPM unavailable: %s", dev.index, err)
        return None


def read(nv: Nvml, dev: Device, g: GpmBuffers, a: dict, out: list[Point], take: Callable[[Any], Any]) -> bool:
    """Take a sample; with the previous one, emit GPM points. False when there was nothing."""
    n = nv.n
    cur = g.samples[1] if g.prev is g.samples[0] else g.samples[0]
    try:
        take(cur)
    except n.NVMLError as err:
        nv.raise_if_lost(err)
        log.debug("gpu%d: GPM sample failed: %s", dev.index, err)
        g.prev = None
        return False
    now = nv.clock()
    prev, prev_t = g.prev, g.prev_t
    g.prev, g.prev_t = cur, now
    if prev is None:
        g.io_start_ns = g.io_start_ns or time.time_ns()
        return False
    values = _metrics(nv, prev, cur)
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
        out.append(M.IO.point(round(total), {**a, "network.io.direction": direction, "infersight.gpu.link": link},
                              start_time_ns=g.io_start_ns))
    return True


def _metrics(nv: Nvml, s1: Any, s2: Any) -> dict[str, float] | None:
    n = nv.n
    mg = n.c_nvmlGpmMetricsGet_t()
    mg.version = n.NVML_GPM_METRICS_GET_VERSION
    mg.numMetrics = len(nv.gpm_ids)
    mg.sample1, mg.sample2 = s1, s2
    for i, (mid, _name) in enumerate(nv.gpm_ids):
        mg.metrics[i].metricId = mid
    try:
        n.nvmlGpmMetricsGet(mg)
    except n.NVMLError as err:
        nv.raise_if_lost(err)
        log.debug("GPM metrics failed: %s", err)
        return None
    return {name: mg.metrics[i].value for i, (_mid, name) in enumerate(nv.gpm_ids) if mg.metrics[i].nvmlReturn == 0}


def known_metrics(n: Any) -> list[tuple[int, str]]:
    """The (id, name) of every GPM metric the collector reads that this binding defines."""
    names = [name for name, _spec, _attrs in M.GPM_GAUGES] + [name for name, _attrs in M.GPM_RATES]
    return [(getattr(n, name), name) for name in names if hasattr(n, name)]


def free(nv: Nvml, dev: Device) -> None:
    """Release the GPU's and its MIG instances' sample buffers."""
    for g in [dev.gpm, *dev.mig_gpm.values()]:
        for s in (g.samples if g else ()):
            nv.quiet(nv.n.nvmlGpmSampleFree, s)
