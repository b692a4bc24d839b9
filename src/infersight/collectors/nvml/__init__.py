"""NVIDIA GPU collector (NVML + GPM); `NvmlCollector` is the `nvml` entry point."""
from infersight.collectors.nvml.collector import NvmlCollector, NvmlConfig

__all__ = ["NvmlCollector", "NvmlConfig"]
