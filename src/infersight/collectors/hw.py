"""The accelerator-health contract every device collector emits: `hw.status` and `hw.errors`.

The SLO accelerator-health SLI (`slo/store.py` rollup), the Grafana accelerator dashboard and the
web UI read these two metrics across device kinds, so they are declared once here and the NVML and
Neuron collectors import them. Readers rely only on `hw.id`, `hw.type` (`gpu` | `accelerator`),
`hw.state` and, for XIDs, `error.type` = `xid` with `hw.gpu.xid`; every other attribute is optional
and depends on the device kind (see docs/collectors/nvml.md and neuron.md).
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

from infersight import semconv
from infersight.collectors.base import AttrValue, MetricSpec, Point

HwState = Literal["ok", "degraded", "failed"]
STATES: tuple[HwState, ...] = ("ok", "degraded", "failed")

# Every device-level point carries these.
DEVICE = (semconv.HW_ID, semconv.HW_TYPE, "hw.name")
# Identity of the device, as far as its driver tells: NVML gives serial, driver, firmware and PCI bus;
# Neuron gives the device type and, on EC2, where it runs (cloud.*, host.*).
IDENTITY = ("hw.model", "hw.vendor", "hw.serial_number", "hw.driver_version", "hw.firmware_version",
            "infersight.gpu.pci_bus_id", "cloud.provider", "cloud.platform", "cloud.region",
            "cloud.availability_zone", "host.id", "host.type")

HW_STATUS = MetricSpec(semconv.HW_STATUS, "updowncounter", "1",
                       "1 for the device's current state (ok, degraded, failed), 0 for the others",
                       DEVICE + ("hw.state",) + IDENTITY)
HW_ERRORS = MetricSpec(semconv.HW_ERRORS, "counter", "{error}",
                       "Hardware errors by type: xid (by code), volatile ECC, NVLink link errors (GPU); "
                       "DRAM and SRAM ECC events (Neuron)",
                       DEVICE + ("error.type", "hw.gpu.xid", "infersight.gpu.nvlink.link"))


def worst(*states: HwState) -> HwState:
    """The most severe of several health verdicts (ok < degraded < failed); ok when there are none."""
    return max(states, key=STATES.index, default="ok")


def status_points(device: Mapping[str, AttrValue], state: HwState,
                  identity: Mapping[str, AttrValue] | None = None) -> list[Point]:
    """One `hw.status` point per state: 1 for `state`, 0 for the others."""
    return [HW_STATUS.point(1 if s == state else 0, {**device, "hw.state": s, **(identity or {})})
            for s in STATES]
