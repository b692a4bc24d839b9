"""One simulated node: the product's real collectors over injected data sources, on a shared clock.

- GPUs: `NvmlCollector` over the NVML replay double (`infersight.testing.nvml_replay`), a variant of the
  captured H200 per node (H100 nodes get the H100's name and memory size). Prefill-heavy nodes replay the
  capture's bf16-matmul steps (tensor pipes busy, DRAM light), decode-heavy ones its memcopy steps (DRAM
  bandwidth saturated, tensor pipes idle). An XID incident injects its code on GPU 0 at every collect.
- Trainium/Inferentia: `NeuronCollector` whose neuron-monitor is a process that only stays up; the
  reports are given to the collector's `feed`, one per collect, derived from a recorded trn1 report.
- Servers: `InferenceCollector` whose `fetch` renders the workload model's exposition at the clock's time.

`Clock` is the simulated time during the backfill and the wall clock afterwards.
"""
from __future__ import annotations

import copy
import sys
import time
import zlib
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from infersight.collectors.base import MetricSpec, Point
from infersight.collectors.inference import Endpoint, InferenceCollector
from infersight.collectors.neuron import NeuronCollector
from infersight.collectors.nvml import NvmlCollector
from infersight.config import CollectorConfig
from infersight.demo.fleet import Node
from infersight.demo.incidents import Script
from infersight.demo.workload import ServerModel, neuron_document
from infersight.testing.nvml_replay import ReplayNvml

# The capture's steps whose GPM window shows each load shape (see `load_capture()["phases"]`).
PREFILL_STEPS = tuple(range(46, 77))  # bf16 matmul: tensor ~93 %, DRAM ~17 %
DECODE_STEPS = tuple(range(88, 107))  # memcopy: DRAM ~88 %, tensor 0
GPU_NAMES = {"h100": ("NVIDIA H100 80GB HBM3", 85_520_809_984), "h200": ("NVIDIA H200", None)}
# A neuron-monitor that only stays up: the simulator gives the reports to the collector's `feed`.
IDLE_MONITOR = (sys.executable, "-c", "import signal; signal.signal(signal.SIGINT, signal.SIG_IGN); "
                "signal.sigwait({signal.SIGTERM})")  # Ctrl-C reaches the whole process group: only close() ends it


class Clock:
    """Simulated seconds while `t` is set (the backfill), else the wall clock."""

    def __init__(self) -> None:
        self.t: float | None = None

    def now(self) -> float:
        return time.time() if self.t is None else self.t

    def now_ns(self) -> int:
        return int(self.now() * 1e9)


def gpu_capture(capture: dict[str, Any], accelerator: str, node: Node) -> dict[str, Any]:
    """The captured H200, renamed and resized to the node's GPU, with the node's own UUIDs."""
    cap = copy.deepcopy(capture)
    dev = cap["devices"][0]
    name, total = GPU_NAMES[accelerator]
    dev["nvmlDeviceGetName"] = {"ok": name}
    dev["nvmlDeviceGetUUID"] = {"ok": f"GPU-{node.index:08x}-demo-{zlib.crc32(node.name.encode()) % 10**4:04d}-0000"}
    if total is not None:
        for sample in cap["series"]:
            for key in ("mem", "mem_v2"):
                rec = sample["dev"].get(key)
                if rec and "ok" in rec:
                    m = rec["ok"]
                    used = min(m["used"], total)
                    rec["ok"] = {**m, "total": total, "used": used, "free": total - used}
    return cap


class Driven:
    """A collector whose data source is set for the current time just before each collect."""

    def __init__(self, inner: Any, before: Callable[[], None]) -> None:
        self.inner = inner
        self._before = before
        self.type = inner.type
        self.Config: type[CollectorConfig] = inner.Config
        self.metrics: Sequence[MetricSpec] = inner.metrics

    @classmethod
    def from_config(cls, cfg: Any) -> Driven:
        raise NotImplementedError("simulated collectors are built by infersight.demo.sources")

    def collect(self) -> Iterable[Point]:
        self._before()
        return list(self.inner.collect())

    def close(self) -> None:
        self.inner.close()


class SimNode:
    """A node's server model and collectors (each a `Driven`, as the agent runs them)."""

    def __init__(self, node: Node, script: Script, clock: Clock, capture: dict[str, Any], start: float,
                 seed: int = 0) -> None:
        self.node = node
        self.script = script
        self.clock = clock
        self.server = ServerModel(node, script, start, seed)
        self.url = f"http://{node.name}.demo:8000/metrics"
        self.collectors: list[tuple[str, Driven]] = []
        inference = InferenceCollector([Endpoint(url=self.url, kind=node.type.server)],
                                       fetch=self._fetch, clock=clock.now_ns)
        self.collectors.append(("inference", Driven(inference, lambda: None)))
        self.replay: ReplayNvml | None = None
        self.neuron: NeuronCollector | None = None
        self._seq = 0
        self._last_doc_t = start
        if node.type.accelerator in GPU_NAMES:
            self.replay = ReplayNvml(gpu_capture(capture, node.type.accelerator, node), gpus=node.type.devices)
            self._steps = PREFILL_STEPS if node.type.role == "prefill" else DECODE_STEPS
            self.replay.seek(self._steps[node.index % len(self._steps)])
            nvml = NvmlCollector(self.replay, processes=False, clock=clock.now)
            self.collectors.append(("nvml", Driven(nvml, self._advance_replay)))
        else:
            self.neuron = NeuronCollector(IDLE_MONITOR)
            self.collectors.append(("neuron", Driven(self.neuron, self._feed_neuron)))

    def _fetch(self, url: str, timeout: float) -> str:
        self.server.advance(self.clock.now())
        return self.server.exposition()

    def _advance_replay(self) -> None:
        assert self.replay is not None
        self._seq += 1
        self.replay.seek(self._steps[(self._seq + self.node.index) % len(self._steps)])
        code = self.script.xid(self.clock.now(), self.node.cloud, self.node.region)
        if code is not None:
            self.replay.inject_xid(0, code)

    def _feed_neuron(self) -> None:
        assert self.neuron is not None
        now = self.clock.now()
        self.server.advance(now)
        self._seq += 1
        self.neuron.feed(neuron_document(self.server, max(now - self._last_doc_t, 1.0), self._seq))
        self._last_doc_t = now

    def start(self, timeout_seconds: float = 10.0) -> None:
        """Start the node's neuron-monitor (if any) and wait until it is up, so fed reports count."""
        if self.neuron is None:
            return
        deadline = time.monotonic() + timeout_seconds
        while time.monotonic() < deadline:
            up = [p.value for p in self.neuron.collect() if p.name == "infersight.neuron.monitor.up"]
            if up and up[0] == 1:
                return
            time.sleep(0.02)
        raise RuntimeError(f"{self.node.name}: the simulated neuron-monitor did not start")

    def close(self) -> None:
        for _, c in self.collectors:
            c.close()
