"""The NVML collector's published metric list (OTel `hw.*` names where a convention exists).

`hw.status` and `hw.errors` are the shared accelerator-health specs of `collectors.hw`.
"""
from __future__ import annotations

from infersight import semconv
from infersight.collectors.base import MetricSpec
from infersight.collectors.hw import DEVICE as DEV
from infersight.collectors.hw import HW_ERRORS as ERRORS
from infersight.collectors.hw import HW_STATUS as STATUS

# Every device-level point carries DEV; MIG-instance points add the MIG keys.
MIG = ("hw.parent", "infersight.gpu.mig.gpu_instance_id", "infersight.gpu.mig.compute_instance_id")
PROC = DEV + ("process.pid", "process.executable.name", "container.id", "k8s.pod.uid")

REACHABLE = MetricSpec(semconv.GPU_REACHABLE, "gauge", "1",
                       "1 when the GPU answered NVML in this collection, 0 when it did not (fell off the bus, "
                       "GPU lost); while NVML itself is down no GPU is listed and `infersight.collector.up` is 0",
                       DEV)
UTIL = MetricSpec("hw.gpu.utilization", "gauge", "1",
                  "Share of the last sample period in which the engine was busy", DEV + ("hw.gpu.task",))
MEMCTL_UTIL = MetricSpec("infersight.gpu.memory_controller.utilization", "gauge", "1",
                         "Share of the last sample period in which device memory was read or written", DEV)
MEM_USAGE = MetricSpec("hw.gpu.memory.usage", "updowncounter", "By",
                       "Device memory allocated (driver-reserved memory excluded where NVML separates it)",
                       DEV + MIG)
MEM_LIMIT = MetricSpec("hw.gpu.memory.limit", "updowncounter", "By", "Device memory size", DEV + MIG)
MEM_UTIL = MetricSpec("hw.gpu.memory.utilization", "gauge", "1", "Fraction of device memory used", DEV + MIG)
MEM_FREE = MetricSpec("infersight.gpu.memory.free", "updowncounter", "By", "Device memory free", DEV + MIG)
MEM_RESERVED = MetricSpec("infersight.gpu.memory.reserved", "updowncounter", "By",
                          "Device memory reserved by the driver and firmware", DEV)
POWER = MetricSpec("hw.power", "gauge", "W", "Power draw", DEV)
POWER_LIMIT = MetricSpec("infersight.gpu.power.limit", "gauge", "W", "Enforced power limit", DEV)
ENERGY = MetricSpec("hw.energy", "counter", "J", "Energy used since the driver was loaded", DEV)
TEMP = MetricSpec("hw.temperature", "gauge", "Cel", "Temperature by sensor (gpu die, memory)",
                  DEV + ("hw.sensor_location",))
CLOCK = MetricSpec("infersight.gpu.clock.frequency", "gauge", "Hz", "Current clock by domain (sm, memory)",
                   DEV + ("infersight.gpu.clock",))
CLOCK_MAX = MetricSpec("infersight.gpu.clock.max_frequency", "gauge", "Hz", "Maximum clock by domain",
                       DEV + ("infersight.gpu.clock",))
CLOCK_EVENT = MetricSpec("infersight.gpu.clock.event", "gauge", "1",
                         "1 while the named clock-event (throttle) reason holds clocks down, else 0",
                         DEV + ("infersight.gpu.clock.event_reason",))
PSTATE = MetricSpec("infersight.gpu.performance_state", "gauge", "1", "Performance state (0 = P0, fastest)",
                    DEV)
PCIE_GEN = MetricSpec("infersight.gpu.pcie.link.generation", "gauge", "1", "Current PCIe link generation", DEV)
PCIE_WIDTH = MetricSpec("infersight.gpu.pcie.link.width", "gauge", "{lane}", "Current PCIe link width", DEV)
PCIE_THROUGHPUT = MetricSpec("infersight.gpu.pcie.throughput", "gauge", "By/s",
                             "PCIe throughput over NVML's short sample window", DEV + ("network.io.direction",))
ECC_AGGREGATE = MetricSpec("infersight.gpu.ecc.aggregate_errors", "counter", "{error}",
                           "ECC errors over the GPU's lifetime", DEV + ("error.type",))
XID_LAST = MetricSpec("infersight.gpu.xid.last", "gauge", "1",
                      "Last XID code seen during this collection interval, 0 when none", DEV)
REMAPPED = MetricSpec("infersight.gpu.memory.remapped_rows", "updowncounter", "{row}",
                      "Rows remapped, by the kind of error that caused it", DEV + ("infersight.gpu.remap.cause",))
REMAP_PENDING = MetricSpec("infersight.gpu.memory.remap.pending", "gauge", "1",
                           "1 when a row remap waits for a GPU reset", DEV)
REMAP_FAILURE = MetricSpec("infersight.gpu.memory.remap.failure", "gauge", "1",
                           "1 when a row remap failed (the GPU needs service)", DEV)
NVLINK_STATE = MetricSpec("infersight.gpu.nvlink.state", "gauge", "1", "1 when the NVLink link is active",
                          DEV + ("infersight.gpu.nvlink.link",))
# GPM (Hopper and newer): computed by NVML from two samples taken one collection interval apart.
SM_ACTIVITY = MetricSpec("infersight.gpu.sm.activity", "gauge", "1", "Share of SMs busy (GPM)", DEV + MIG)
SM_OCCUPANCY = MetricSpec("infersight.gpu.sm.occupancy", "gauge", "1",
                          "Resident warps over the SMs' maximum (GPM)", DEV + MIG)
GRAPHICS_ACTIVITY = MetricSpec("infersight.gpu.graphics.activity", "gauge", "1",
                               "Share of time a compute or graphics context was active (GPM)", DEV + MIG)
DRAM_ACTIVITY = MetricSpec("infersight.gpu.dram.activity", "gauge", "1",
                           "DRAM bandwidth used over its theoretical maximum (GPM)", DEV + MIG)
PIPE_UTIL = MetricSpec("infersight.gpu.pipe.utilization", "gauge", "1",
                       "Share of time the named pipe was busy: tensor (any), tensor_hmma, tensor_imma, "
                       "tensor_dfma, fp16, fp32, fp64, integer (GPM)", DEV + MIG + ("infersight.gpu.pipe",))
IO = MetricSpec("hw.gpu.io", "counter", "By", "Bytes over PCIe and NVLink since the collector started (GPM)",
                DEV + MIG + ("network.io.direction", "infersight.gpu.link"))
PROC_MEMORY = MetricSpec("infersight.gpu.process.memory.usage", "updowncounter", "By",
                         "Device memory used by a process", PROC + MIG)
PROC_UTIL = MetricSpec("infersight.gpu.process.utilization", "gauge", "1",
                       "A process's share of the engine over the last sample period", PROC + ("hw.gpu.task",))
PROC_MEMCTL_UTIL = MetricSpec("infersight.gpu.process.memory_controller.utilization", "gauge", "1",
                              "A process's share of device-memory traffic time over the last sample period",
                              PROC)

METRICS = (STATUS, REACHABLE, UTIL, MEMCTL_UTIL, MEM_USAGE, MEM_LIMIT, MEM_UTIL, MEM_FREE, MEM_RESERVED, POWER,
           POWER_LIMIT, ENERGY, TEMP, CLOCK, CLOCK_MAX, CLOCK_EVENT, PSTATE, PCIE_GEN, PCIE_WIDTH,
           PCIE_THROUGHPUT, ERRORS, ECC_AGGREGATE, XID_LAST, REMAPPED, REMAP_PENDING, REMAP_FAILURE,
           NVLINK_STATE, SM_ACTIVITY, SM_OCCUPANCY, GRAPHICS_ACTIVITY, DRAM_ACTIVITY, PIPE_UTIL, IO,
           PROC_MEMORY, PROC_UTIL, PROC_MEMCTL_UTIL)

# (NVML GPM metric constant, spec, extra attributes); NVML reports these in percent.
GPM_GAUGES: tuple[tuple[str, MetricSpec, dict[str, str]], ...] = (
    ("NVML_GPM_METRIC_SM_UTIL", SM_ACTIVITY, {}),
    ("NVML_GPM_METRIC_SM_OCCUPANCY", SM_OCCUPANCY, {}),
    ("NVML_GPM_METRIC_GRAPHICS_UTIL", GRAPHICS_ACTIVITY, {}),
    ("NVML_GPM_METRIC_DRAM_BW_UTIL", DRAM_ACTIVITY, {}),
    ("NVML_GPM_METRIC_ANY_TENSOR_UTIL", PIPE_UTIL, {"infersight.gpu.pipe": "tensor"}),
    ("NVML_GPM_METRIC_HMMA_TENSOR_UTIL", PIPE_UTIL, {"infersight.gpu.pipe": "tensor_hmma"}),
    ("NVML_GPM_METRIC_IMMA_TENSOR_UTIL", PIPE_UTIL, {"infersight.gpu.pipe": "tensor_imma"}),
    ("NVML_GPM_METRIC_DFMA_TENSOR_UTIL", PIPE_UTIL, {"infersight.gpu.pipe": "tensor_dfma"}),
    ("NVML_GPM_METRIC_FP16_UTIL", PIPE_UTIL, {"infersight.gpu.pipe": "fp16"}),
    ("NVML_GPM_METRIC_FP32_UTIL", PIPE_UTIL, {"infersight.gpu.pipe": "fp32"}),
    ("NVML_GPM_METRIC_FP64_UTIL", PIPE_UTIL, {"infersight.gpu.pipe": "fp64"}),
    ("NVML_GPM_METRIC_INTEGER_UTIL", PIPE_UTIL, {"infersight.gpu.pipe": "integer"}),
)
# Rates in MiB/s that the collector integrates into the `hw.gpu.io` byte counters.
GPM_RATES = (
    ("NVML_GPM_METRIC_PCIE_TX_PER_SEC", {"network.io.direction": "transmit", "infersight.gpu.link": "pcie"}),
    ("NVML_GPM_METRIC_PCIE_RX_PER_SEC", {"network.io.direction": "receive", "infersight.gpu.link": "pcie"}),
    ("NVML_GPM_METRIC_NVLINK_TOTAL_TX_PER_SEC",
     {"network.io.direction": "transmit", "infersight.gpu.link": "nvlink"}),
    ("NVML_GPM_METRIC_NVLINK_TOTAL_RX_PER_SEC",
     {"network.io.direction": "receive", "infersight.gpu.link": "nvlink"}),
)

# nvmlClocksEventReason* bits, named as nvidia-smi names them.
CLOCK_EVENT_REASONS = (
    (0x1, "gpu_idle"), (0x2, "applications_clocks_setting"), (0x4, "sw_power_cap"), (0x8, "hw_slowdown"),
    (0x10, "sync_boost"), (0x20, "sw_thermal_slowdown"), (0x40, "hw_thermal_slowdown"),
    (0x80, "hw_power_brake_slowdown"), (0x100, "display_clock_setting"),
)
