"""Readers for hardware error families: ECC counters, row remapping, NVLink errors and XID events.

These are the readers whose verdicts make a GPU degraded or failed (see `health`).
"""
from __future__ import annotations

import logging
import time

from infersight.collectors.base import Point
from infersight.collectors.hw import HwState, worst
from infersight.collectors.nvml import health
from infersight.collectors.nvml import metrics as M
from infersight.collectors.nvml.device import INVALID_ARGUMENT, Device, Nvml

log = logging.getLogger(__name__)

_MAX_EVENTS_PER_COLLECT = 1000
_NVLINK_COUNTERS = (("nvlink_replay", "NVML_NVLINK_ERROR_DL_REPLAY"),
                    ("nvlink_recovery", "NVML_NVLINK_ERROR_DL_RECOVERY"),
                    ("nvlink_crc_flit", "NVML_NVLINK_ERROR_DL_CRC_FLIT"),
                    ("nvlink_crc_data", "NVML_NVLINK_ERROR_DL_CRC_DATA"))


def ecc(nv: Nvml, dev: Device, out: list[Point]) -> HwState:
    """Volatile and lifetime ECC counters; degraded when new uncorrected errors appeared since the last collect."""
    n, h, a = nv.n, dev.handle, dev.attrs
    new_uncorrected = False
    for etype, const in (("ecc_corrected", "NVML_MEMORY_ERROR_TYPE_CORRECTED"),
                         ("ecc_uncorrected", "NVML_MEMORY_ERROR_TYPE_UNCORRECTED")):
        kind = getattr(n, const)
        vol = nv.call(dev, "nvmlDeviceGetTotalEccErrors", h, kind, n.NVML_VOLATILE_ECC, key=(etype, "volatile"))
        if vol is not None:
            out.append(M.ERRORS.point(vol, {**a, "error.type": etype}))
            if etype == "ecc_uncorrected":
                new_uncorrected = dev.ecc_uncorrected is not None and vol > dev.ecc_uncorrected
                dev.ecc_uncorrected = vol
        agg = nv.call(dev, "nvmlDeviceGetTotalEccErrors", h, kind, n.NVML_AGGREGATE_ECC, key=(etype, "aggregate"))
        if agg is not None:
            out.append(M.ECC_AGGREGATE.point(agg, {**a, "error.type": etype}))
    return health.ecc(new_uncorrected)


def remapped_rows(nv: Nvml, dev: Device, out: list[Point]) -> HwState:
    """Rows remapped by cause, and whether a remap is pending (degraded) or failed (failed)."""
    a = dev.attrs
    rows = nv.call(dev, "nvmlDeviceGetRemappedRows", dev.handle)
    if rows is None:
        return "ok"
    corr, unc, pending, failure = rows
    out.append(M.REMAPPED.point(corr, {**a, "infersight.gpu.remap.cause": "correctable"}))
    out.append(M.REMAPPED.point(unc, {**a, "infersight.gpu.remap.cause": "uncorrectable"}))
    out.append(M.REMAP_PENDING.point(int(bool(pending)), a))
    out.append(M.REMAP_FAILURE.point(int(bool(failure)), a))
    return health.remap(pending, failure)


def nvlink(nv: Nvml, dev: Device, out: list[Point]) -> HwState:
    """State and data-link error counters of every NVLink link the GPU has."""
    n, h, a = nv.n, dev.handle, dev.attrs
    if dev.nvlinks is None:
        dev.nvlinks = _discover_links(nv, dev)
    for link in dev.nvlinks:
        la = {**a, "infersight.gpu.nvlink.link": link}
        state = nv.call(dev, "nvmlDeviceGetNvLinkState", h, link, key=(link,))
        if state is not None:
            out.append(M.NVLINK_STATE.point(int(bool(state)), la))
        for etype, const in _NVLINK_COUNTERS:
            v = nv.call(dev, "nvmlDeviceGetNvLinkErrorCounter", h, link, getattr(n, const), key=(link, etype))
            if v is not None:
                out.append(M.ERRORS.point(v, {**la, "error.type": etype}))
    return "ok"


def _discover_links(nv: Nvml, dev: Device) -> list[int]:
    """Once per GPU: the links that answer; those past the last answer INVALID_ARGUMENT."""
    n, links = nv.n, []
    for link in range(getattr(n, "NVML_NVLINK_MAX_LINKS", 18)):
        try:
            n.nvmlDeviceGetNvLinkState(dev.handle, link)
        except n.NVMLError as err:
            nv.raise_if_lost(err)
            if getattr(err, "value", None) == INVALID_ARGUMENT:
                break
            continue
        links.append(link)
    return links


def xids(nv: Nvml, dev: Device, out: list[Point]) -> HwState:
    """Drain the GPU's XID events: counters by code, the last code of this interval, and its verdict."""
    n, a = nv.n, dev.attrs
    if not dev.events_checked:
        _register_events(nv, dev)
    if dev.events is None:
        return "ok"
    state: HwState = "ok"
    last = 0
    for _ in range(_MAX_EVENTS_PER_COLLECT):
        try:
            ev = n.nvmlEventSetWait(dev.events, 0)
        except n.NVMLError as err:
            nv.raise_if_lost(err)
            break  # NVML_ERROR_TIMEOUT: nothing pending
        code = int(ev.eventData)
        dev.xid_counts[code] = dev.xid_counts.get(code, 0) + 1
        last = code
        log.warning("gpu%d (%s): XID %d", dev.index, a["hw.id"], code)
        state = worst(state, health.xid(code))
    for code, count in sorted(dev.xid_counts.items()):
        out.append(M.ERRORS.point(count, {**a, "error.type": "xid", "hw.gpu.xid": code},
                                  start_time_ns=dev.xid_start_ns))
    out.append(M.XID_LAST.point(last, a))
    return state


def _register_events(nv: Nvml, dev: Device) -> None:
    n = nv.n
    dev.events_checked = True
    es = nv.call(dev, "nvmlEventSetCreate")
    if es is None:
        return
    try:
        n.nvmlDeviceRegisterEvents(dev.handle, n.nvmlEventTypeXidCriticalError, es)
        dev.events, dev.xid_start_ns = es, time.time_ns()
    except n.NVMLError as err:
        log.info("gpu%d: XID events unavailable: %s", dev.index, err)
        nv.quiet(n.nvmlEventSetFree, es)
