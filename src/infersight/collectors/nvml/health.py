"""A GPU's `hw.state` from what the readers saw: each reading that can say something about health
gives a verdict here, and the session folds the verdicts with `collectors.hw.worst`.

Degraded: the hardware protects itself (clock slowdown), a row remap waits for a reset, new
uncorrected ECC errors, or an XID that NVIDIA's catalogue attributes to the hardware. Failed: a row
remap failed, XID 79 (fallen off the bus), or the GPU stopped answering (`device.Lost`).
"""
from __future__ import annotations

from infersight.collectors.hw import HwState

# nvmlClocksEventReason* bits that mean the hardware protects itself (hw, thermal, power-brake slowdown).
HW_SLOWDOWN_MASK = 0x8 | 0x40 | 0x80
# XIDs that point at the hardware rather than the application (NVIDIA's XID catalogue).
XID_FAILED = frozenset({79})  # fallen off the bus
XID_DEGRADED = frozenset({48, 63, 64, 74, 92, 94, 95, 119, 120, 121, 140})


def clock_events(reasons: int) -> HwState:
    return "degraded" if reasons & HW_SLOWDOWN_MASK else "ok"


def remap(pending: int, failure: int) -> HwState:
    return "failed" if failure else "degraded" if pending else "ok"


def ecc(new_uncorrected: bool) -> HwState:
    return "degraded" if new_uncorrected else "ok"


def xid(code: int) -> HwState:
    return "failed" if code in XID_FAILED else "degraded" if code in XID_DEGRADED else "ok"
