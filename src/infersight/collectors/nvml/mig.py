"""MIG instances of a GPU in MIG mode: memory and GPM points per instance, keyed by the instance's
UUID with `hw.parent` naming the GPU. The instances found are kept on the device for this collect,
so per-process points land on the instance a process runs in.
"""
from __future__ import annotations

from typing import Any

from infersight.collectors.base import Point
from infersight.collectors.hw import HwState
from infersight.collectors.nvml import gpm
from infersight.collectors.nvml.device import Device, Nvml, text
from infersight.collectors.nvml.readers import memory


def instances(nv: Nvml, dev: Device, out: list[Point]) -> HwState:
    """Points per MIG instance; sets `dev.mig` to the instances' attributes by GPU-instance id."""
    n, h = nv.n, dev.handle
    dev.mig = {}
    mode = nv.call(dev, "nvmlDeviceGetMigMode", h)
    if not mode or mode[0] != getattr(n, "NVML_DEVICE_MIG_ENABLE", 1):
        return "ok"
    for i in range(nv.call(dev, "nvmlDeviceGetMaxMigDeviceCount", h) or 0):
        try:
            mh = n.nvmlDeviceGetMigDeviceHandleByIndex(h, i)
        except n.NVMLError as err:
            nv.raise_if_lost(err)
            continue  # NOT_FOUND: no instance in this slot
        ma = _attributes(nv, dev, mh)
        if ma is None:
            continue
        gi = ma["infersight.gpu.mig.gpu_instance_id"]
        dev.mig[gi] = ma
        memory(nv, dev, mh, ma, out, mig=True)
        if nv.gpm:
            _gpm(nv, dev, gi, ma, out)
    return "ok"


def _attributes(nv: Nvml, dev: Device, mh: Any) -> dict[str, Any] | None:
    gi = nv.call(dev, "nvmlDeviceGetGpuInstanceId", mh, key=("mig",))
    ci = nv.call(dev, "nvmlDeviceGetComputeInstanceId", mh, key=("mig",))
    uuid = nv.call(dev, "nvmlDeviceGetUUID", mh, key=("mig",))
    if gi is None or uuid is None:
        return None
    return {"hw.id": text(uuid), "hw.type": "gpu", "hw.name": f"{dev.attrs['hw.name']}/mig{gi}",
            "hw.parent": dev.attrs["hw.id"], "infersight.gpu.mig.gpu_instance_id": gi,
            "infersight.gpu.mig.compute_instance_id": ci if ci is not None else 0}


def _gpm(nv: Nvml, dev: Device, gi: int, ma: dict[str, Any], out: list[Point]) -> None:
    g = dev.mig_gpm.get(gi)
    if g is None and ("gpm", gi) not in dev.unsupported:
        g = dev.mig_gpm[gi] = gpm.alloc(nv, dev)
        if g is None:
            dev.unsupported.add(("gpm", gi))
    if g is not None:
        h = dev.handle
        gpm.read(nv, dev, g, ma, out, lambda s: nv.n.nvmlGpmMigSampleGet(h, gi, s))
