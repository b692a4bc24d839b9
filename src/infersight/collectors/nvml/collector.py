"""The `nvml` collector: NVIDIA GPUs through NVML, with GPM profiling metrics on Hopper and newer, without DCGM.

The NVML binding (the `pynvml` module of nvidia-ml-py, or `infersight.testing.nvml_replay`) is
passed in; the collector never imports it outside `from_config`. What is read, and how NVML is
called, lives in the source modules: `session` (lifecycle and per-GPU loop), `device` (the call
discipline), `readers`, `errors`, `gpm`, `mig`, `processes` (one reader per family) and `health`.
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from infersight.collectors.base import Health, Point, type_of
from infersight.collectors.nvml.device import Nvml
from infersight.collectors.nvml.metrics import METRICS
from infersight.collectors.nvml.session import Session
from infersight.config import CollectorConfig

log = logging.getLogger(__name__)


class NvmlConfig(CollectorConfig):
    """Options of the `nvml` collector (`pip install infersight[nvidia]`)."""

    type: Literal["nvml"] = "nvml"
    gpm: bool = Field(True, description="Read GPM profiling metrics (SM, tensor, DRAM activity; PCIe and "
                                        "NVLink bytes) on GPUs that support them (Hopper and newer). GPM "
                                        "values cover the time between two collects, so they start with "
                                        "the second one.")
    processes: bool = Field(True, description="Report GPU memory and utilisation per process, with the "
                                              "container and Kubernetes pod read from /proc/<pid>/cgroup.")
    proc_root: Path = Field(Path("/proc"), description="Where the host's /proc is mounted (e.g. /host/proc "
                                                       "when the agent runs in a container with hostPID).")
    mig: bool = Field(True, description="Report memory and GPM metrics per MIG instance on GPUs in MIG mode.")
    xid: bool = Field(True, description="Count XID errors from an NVML event set.")
    nvlink: bool = Field(True, description="Report NVLink link state and error counters where supported.")


class NvmlCollector:
    """Per-GPU, per-MIG-instance and per-process metrics from NVML; see `metrics.METRICS`."""

    type = type_of(NvmlConfig)
    Config = NvmlConfig
    metrics = METRICS
    needs_two_samples = True  # GPM values and utilisation periods come from consecutive collects

    def __init__(self, nvml: Any | None, *, gpm: bool = True, processes: bool = True,
                 proc_root: Path = Path("/proc"), mig: bool = True, xid: bool = True, nvlink: bool = True,
                 clock: Callable[[], float] = time.monotonic,
                 init_backoff_seconds: tuple[float, float] = (10.0, 300.0)) -> None:
        self._lock = threading.Lock()
        self._session = Session(Nvml(nvml, clock, gpm), processes=processes, proc_root=Path(proc_root),
                                mig_on=mig, xid=xid, nvlink=nvlink, init_backoff_seconds=init_backoff_seconds)

    @classmethod
    def from_config(cls, cfg: NvmlConfig) -> NvmlCollector:
        """The collector over nvidia-ml-py's `pynvml`, or one that reports nothing when it is not installed."""
        try:
            import pynvml  # nvidia-ml-py
        except ImportError:
            pynvml = None
        return cls(pynvml, gpm=cfg.gpm, processes=cfg.processes, proc_root=cfg.proc_root, mig=cfg.mig,
                   xid=cfg.xid, nvlink=cfg.nvlink)

    def collect(self) -> Iterable[Point]:
        """Every GPU's points; nothing while the previous collect still runs."""
        # The agent runs collect in a thread with a timeout; never pile up behind a stuck call.
        if not self._lock.acquire(blocking=False):
            log.warning("nvml: previous collection still running; skipping this one")
            return []
        try:
            return self._session.read() if self._session.start() else []
        finally:
            self._lock.release()

    def health(self) -> Health:
        """Down (nvml_missing, nvml_init) while NVML is not initialised; GPUs not answering are problems."""
        return self._session.health()

    def close(self) -> None:
        """Release NVML resources."""
        with self._lock:
            self._session.close()
