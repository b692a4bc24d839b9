"""What the NVML readers share: per-GPU state, and `Nvml`, the one way a reader calls NVML.

`Nvml.call` remembers per device what answered NOT_SUPPORTED (so it is asked once) and turns a
GPU that fell off the bus into `Lost`, which the session reports as `hw.status` = failed instead
of letting the exception escape `collect()`.
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)

# NVML error codes (identical in every NVML version).
NOT_SUPPORTED, NO_PERMISSION, INVALID_ARGUMENT = 3, 4, 2
NOT_FOUND, TIMEOUT, FUNCTION_NOT_FOUND = 6, 10, 13
GPU_IS_LOST, RESET_REQUIRED, ARGUMENT_VERSION_MISMATCH = 15, 16, 25
# Answers that will not change while the driver stays loaded: ask once, then skip.
PERMANENT = frozenset({NOT_SUPPORTED, NO_PERMISSION, INVALID_ARGUMENT, FUNCTION_NOT_FOUND,
                       ARGUMENT_VERSION_MISMATCH})
LOST = frozenset({GPU_IS_LOST, RESET_REQUIRED})


class Lost(Exception):
    """The GPU stopped answering (fell off the bus or needs a reset)."""


@dataclass
class GpmBuffers:
    """Two GPM sample buffers used alternately; metrics are computed between consecutive collects."""

    samples: list[Any]
    prev: Any = None
    prev_t: float = 0.0
    io_bytes: dict[tuple[str, str], float] = field(default_factory=dict)
    io_start_ns: int = 0


@dataclass
class Device:
    """One GPU: its handle, identity, what it does not support, and each reader's state."""

    index: int
    handle: Any = None
    attrs: dict[str, Any] = field(default_factory=dict)
    identity: dict[str, Any] = field(default_factory=dict)
    described: bool = False
    unsupported: set[tuple] = field(default_factory=set)
    max_clocks: dict[str, int] = field(default_factory=dict)
    nvlinks: list[int] | None = None
    gpm: GpmBuffers | None = None
    gpm_checked: bool = False
    gpm_done: bool = False  # this collect's device GPM gave PCIe bytes
    mig: dict[int, dict[str, Any]] = field(default_factory=dict)  # this collect's MIG instances by GI id
    mig_gpm: dict[int, GpmBuffers | None] = field(default_factory=dict)  # None: GPM could not allocate
    events: Any = None
    events_checked: bool = False
    xid_counts: dict[int, int] = field(default_factory=dict)
    xid_start_ns: int = 0
    ecc_uncorrected: int | None = None
    proc_ts: int = 0
    lost: bool = False


def text(v: Any) -> str:
    """NVML strings are bytes in older bindings."""
    return v.decode() if isinstance(v, bytes) else str(v)


class Nvml:
    """The NVML binding (`pynvml` or a replay) with the call discipline every reader follows."""

    def __init__(self, module: Any, clock: Callable[[], float], gpm: bool) -> None:
        self.n = module
        self.clock = clock
        self.gpm = gpm  # read GPM metrics (per GPU, or per MIG instance in MIG mode)
        self.gpm_ids: list[tuple[int, str]] = []  # the GPM metrics this binding knows, asked for together

    def call(self, dev: Device, name: str, *args: Any, key: tuple = ()) -> Any:
        """NVML `name`(*args), or None when it is unsupported (remembered) or failed this time."""
        k = (name, *key)
        if k in dev.unsupported:
            return None
        fn = getattr(self.n, name, None)
        if fn is None:
            dev.unsupported.add(k)
            return None
        try:
            return fn(*args)
        except self.n.NVMLError as err:
            code = getattr(err, "value", None)
            self.raise_if_lost(err)
            if code in PERMANENT:
                dev.unsupported.add(k)
                log.debug("gpu%d: %s%s unsupported (%s); not asked again", dev.index, name, key, err)
            elif code != NOT_FOUND:
                log.debug("gpu%d: %s%s failed: %s", dev.index, name, key, err)
            return None

    @staticmethod
    def raise_if_lost(err: Exception) -> None:
        """Turn an NVML error that means the GPU is gone into `Lost`."""
        if getattr(err, "value", None) in LOST:
            raise Lost(str(err)) from None

    def quiet(self, fn: Callable, *args: Any) -> None:
        """Release something; a failure only matters to the debug log."""
        try:
            fn(*args)
        except self.n.NVMLError as err:
            log.debug("NVML cleanup: %s", err)


def describe(nv: Nvml, dev: Device, driver: str) -> None:
    """Identity and static facts, read once per device."""
    n, h = nv.n, dev.handle
    uuid = nv.call(dev, "nvmlDeviceGetUUID", h)
    dev.attrs = {"hw.id": text(uuid) if uuid else f"gpu{dev.index}", "hw.type": "gpu",
                 "hw.name": f"gpu{dev.index}"}
    ident = {"hw.vendor": "NVIDIA", "hw.driver_version": driver}
    for attr, fn in (("hw.model", "nvmlDeviceGetName"), ("hw.serial_number", "nvmlDeviceGetSerial"),
                     ("hw.firmware_version", "nvmlDeviceGetVbiosVersion")):
        v = nv.call(dev, fn, h)
        if v:
            ident[attr] = text(v)
    pci = nv.call(dev, "nvmlDeviceGetPciInfo", h)
    if pci is not None:
        ident["infersight.gpu.pci_bus_id"] = text(pci.busId)
    dev.identity = ident
    for domain, const in (("sm", "NVML_CLOCK_SM"), ("memory", "NVML_CLOCK_MEM")):
        v = nv.call(dev, "nvmlDeviceGetMaxClockInfo", h, getattr(n, const), key=(domain,))
        if v:
            dev.max_clocks[domain] = v
    dev.described = True
