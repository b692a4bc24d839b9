"""neuron-monitor's JSON output format, as pydantic models (one document per line).

Unknown keys are ignored and every group is optional, so newer neuron-monitor versions and
partial documents validate; a document that does not fit raises pydantic's ValidationError
(a ValueError), which the collector counts as malformed.
"""
from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class _Wire(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class Group(_Wire):
    period: float | None = None
    error: str | None = ""


class _Latency(_Wire):
    total_latency: dict[str, float] | None = None
    device_latency: dict[str, float] | None = None


class ExecutionStats(Group):
    error_summary: dict[str, int] = {}
    execution_summary: dict[str, int] = {}
    latency_stats: _Latency | None = None


class _Core(_Wire):
    neuroncore_utilization: float | None = None
    flops: float | None = None


class NeuroncoreCounters(Group):
    neuroncores_in_use: dict[str, _Core] = {}


class _Breakdown(_Wire):
    host: dict[str, int] = {}
    neuroncore_memory_usage: dict[str, dict[str, int]] = {}


class _RuntimeBytes(_Wire):
    host: int | None = None
    neuron_device: int | None = None
    usage_breakdown: _Breakdown | None = None


class _SubgraphBytes(_Wire):
    host: int | None = None
    neuron_device: int | None = None


class _Subgraph(_Wire):
    memory_used_bytes: _SubgraphBytes | None = None
    neuroncore_index: int | None = None
    neuron_device_index: int | None = None


class _Model(_Wire):
    name: str = ""
    uuid: str = ""
    model_id: int | None = None
    is_running: bool = False
    subgraphs: dict[str, _Subgraph] = {}


class MemoryUsed(Group):
    neuron_runtime_used_bytes: _RuntimeBytes | None = None
    loaded_models: list[_Model] = []


class RuntimeVcpu(Group):
    vcpu_usage: dict[str, float] = {}


class RuntimeReport(_Wire):
    neuroncore_counters: NeuroncoreCounters | None = None
    execution_stats: ExecutionStats | None = None
    memory_used: MemoryUsed | None = None
    neuron_runtime_vcpu_usage: RuntimeVcpu | None = None


class Runtime(_Wire):
    pid: int = 0
    neuron_runtime_tag: str | int = ""
    error: str | None = ""
    report: RuntimeReport | None = None


class _HwDevice(_Wire):
    neuron_device_index: int
    mem_ecc_corrected: int = 0
    mem_ecc_uncorrected: int = 0
    sram_ecc_corrected: int = 0
    sram_ecc_uncorrected: int = 0


class HwCounters(Group):
    neuron_devices: list[_HwDevice] = []


class SystemData(_Wire):
    neuron_hw_counters: HwCounters | None = None
    vcpu_usage: Group | None = None
    memory_info: Group | None = None


class InstanceInfo(_Wire):
    instance_id: str = ""
    instance_type: str = ""
    instance_availability_zone: str = ""
    instance_region: str = ""
    error: str | None = ""


class HardwareInfo(_Wire):
    neuron_device_type: str | None = None
    neuron_device_count: int | None = None
    neuroncore_per_device_count: int | None = None
    error: str | None = ""


class K8sEntry(_Wire):
    pod_name: str = ""
    namespace: str = ""


class K8sInfo(Group):
    neuroncores_k8s_info: dict[str, K8sEntry] = {}


class Report(_Wire):
    """One neuron-monitor document."""

    neuron_runtime_data: list[Runtime] = []
    system_data: SystemData | None = None
    instance_info: InstanceInfo | None = None
    neuron_hardware_info: HardwareInfo | None = None
    neuron_k8s_info: K8sInfo | None = None


def parse_document(line: str | bytes) -> Report:
    """Validate one document; raises ValueError (pydantic's ValidationError) when malformed."""
    return Report.model_validate_json(line)


