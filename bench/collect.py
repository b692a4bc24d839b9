"""Cost of accelerator collection: one NVML cycle for 8 replayed H200s with GPM, and the Neuron parser.

NVML: the packaged H200 capture (infersight.testing.nvml_replay) replayed as 8 GPUs, stepping through the matmul and
memcopy phases, with per-process attribution from a fake /proc. The replay is pure Python, so
the figures are the collector's own cost plus the replay's; on a GPU host the NVML calls cost
driver round-trips instead. Baseline in the same run: the collector with GPM and processes off.
Neuron: `feed()` (pydantic validation + state update) per document, against plain `json.loads`.
Target (issue 3): 8 GPUs at a 1 s interval cost <= 2 % of one core.
"""
from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from infersight.collectors.neuron import NeuronCollector  # noqa: E402
from infersight.collectors.nvml import NvmlCollector  # noqa: E402
from infersight.testing.nvml_replay import ReplayNvml, load_capture  # noqa: E402

CAPTURE = load_capture()
NEURON = ROOT / "tests/fixtures/neuron"
CYCLES = 200


def nvml_cycle_cost(proc_root: Path, **features: bool) -> tuple[float, float, int]:
    """(wall s, cpu s, points) per collect, after two warm-up cycles (device discovery, first GPM sample)."""
    r = ReplayNvml(CAPTURE, gpus=8)
    c = NvmlCollector(r, clock=r.clock, proc_root=proc_root, **features)
    steps = r.steps("matmul_bf16") + r.steps("memcopy")
    r.seek(steps[0])
    c.collect()
    r.seek(steps[1])
    c.collect()
    points = 0
    wall0, cpu0 = time.perf_counter(), time.process_time()
    for i in range(CYCLES):
        r.seek(steps[2 + i % (len(steps) - 2)])
        points += len(list(c.collect()))
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    c.close()
    return wall / CYCLES, cpu / CYCLES, points // CYCLES


def neuron_cost(path: Path, n: int = 2000) -> tuple[float, float]:
    """(seconds per document through feed(), seconds per document through json.loads)."""
    line = json.dumps(json.loads(path.read_text()))
    c = NeuronCollector(["unused"])
    c.close()  # no child process: feed the parser directly
    t0 = time.perf_counter()
    for _ in range(n):
        c.feed(line)
    fed = (time.perf_counter() - t0) / n
    t0 = time.perf_counter()
    for _ in range(n):
        json.loads(line)
    return fed, (time.perf_counter() - t0) / n


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for pid in (430, 460):
            (root / str(pid)).mkdir()
            (root / str(pid) / "cgroup").write_text(
                "0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod3f6b2a4e_9c1d_4e8f_b7a2_"
                f"5d0c9e1f2a3b.slice/cri-containerd-{'ab' * 32}.scope\n")
            (root / str(pid) / "comm").write_text("python3\n")
        full_wall, full_cpu, full_pts = nvml_cycle_cost(root)
        base_wall, base_cpu, base_pts = nvml_cycle_cost(root, gpm=False, processes=False)
    print(f"nvml, 8 replayed H200 GPUs, {CYCLES} cycles")
    print(f"  full (GPM + processes + XID + MIG check): wall {full_wall * 1e3:.2f} ms, "
          f"cpu {full_cpu * 1e3:.2f} ms per cycle, {full_pts} points")
    print(f"  baseline (GPM and processes off):        wall {base_wall * 1e3:.2f} ms, "
          f"cpu {base_cpu * 1e3:.2f} ms per cycle, {base_pts} points")
    print(f"  full / baseline cpu: {full_cpu / base_cpu:.2f}x")
    share = full_cpu / 1.0 * 100
    print(f"  share of one core at a 1 s interval: {share:.2f} % (target <= 2 %: "
          f"{'met' if share <= 2 else 'NOT met'})")
    print("neuron-monitor parser")
    for name in ("neuron-monitor_trn1.2xlarge_wandb-test.json", "derived_window_group_errors.json"):
        fed, plain = neuron_cost(NEURON / name)
        print(f"  {name}: feed {fed * 1e6:.1f} us/document, json.loads {plain * 1e6:.1f} us "
              f"({fed / plain:.1f}x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
