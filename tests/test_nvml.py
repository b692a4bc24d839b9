"""NVML collector against a replay of a real H200 capture (idle → bf16 matmul → memcopy → idle)."""
from __future__ import annotations

import logging
import threading
from pathlib import Path

import pytest

from infersight.collectors.base import Point
from infersight.collectors.nvml import NvmlCollector
from infersight.collectors.nvml.cgroup import parse_cgroup
from infersight.config import ConfigError, parse_config
from infersight.testing.nvml_replay import MigInstance, ReplayNvml, load_capture
from support.collectors import one, pick

CAPTURE = load_capture()
UUID = "GPU-f07beab1-8a49-0269-e8a1-24e7493b7eef"

POD_UID = "3f6b2a4e-9c1d-4e8f-b7a2-5d0c9e1f2a3b"
K8S_CONTAINER = "8e2d5c1b7a9f4e3d6c0b8a7f5e4d3c2b1a0f9e8d7c6b5a4f3e2d1c0b9a8f7e6d"
DOCKER_CONTAINER = "5a1b9c3d7e2f4a6b8c0d1e3f5a7b9c2d4e6f8a0b1c3d5e7f9a2b4c6d8e0f1a3b"
# What /proc/<pid>/cgroup holds for a containerd pod (cgroup v2, systemd driver) ...
KUBEPODS_V2 = ("0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod"
               f"{POD_UID.replace('-', '_')}.slice/cri-containerd-{K8S_CONTAINER}.scope\n")
# ... and for a Docker container on a cgroup v1 host.
DOCKER_V1 = "".join(f"{i}:{c}:/docker/{DOCKER_CONTAINER}\n" for i, c in (
    (12, "pids"), (11, "memory"), (10, "cpu,cpuacct"), (9, "devices"), (8, "freezer"), (7, "net_cls,net_prio"),
    (6, "blkio"), (5, "perf_event"), (4, "hugetlb"), (3, "cpuset"), (2, "rdma"), (1, "name=systemd"))) + "0::/\n"


def replay(**kw) -> ReplayNvml:
    return ReplayNvml(CAPTURE, **kw)


def collector(r: ReplayNvml, proc_root: Path | str = "/nonexistent", **kw) -> NvmlCollector:
    return NvmlCollector(r, clock=r.clock, proc_root=Path(proc_root), **kw)


def at(c: NvmlCollector, r: ReplayNvml, step: int) -> list[Point]:
    r.seek(step)
    return list(c.collect())


def status(points: list[Point], hw_id: str) -> str:
    states = {p.attributes["hw.state"]: p.value for p in points
              if p.name == "hw.status" and p.attributes["hw.id"] == hw_id}
    assert sorted(states) == ["degraded", "failed", "ok"] and sorted(states.values()) == [0, 0, 1], states
    return next(s for s, v in states.items() if v == 1)


def gpm(points: list[Point], pipe: str | None = None, name: str = "infersight.gpu.pipe.utilization") -> float:
    return one(points, name, **({"infersight__gpu__pipe": pipe} if pipe else {}))


def steady(phase: str) -> tuple[int, int]:
    """Two steps 2 s apart in the middle of a phase, after the load has ramped up."""
    steps = ReplayNvml(CAPTURE).steps(phase)
    mid = steps[len(steps) // 2]
    return mid - 5, mid + 5


# -- values through the phases -------------------------------------------------------------------
def test_phases_separate_tensor_bound_from_memory_bound():
    r = replay()
    c = collector(r)
    seen = {}
    for phase in ("idle", "matmul_bf16", "memcopy", "idle_after"):
        first, second = steady(phase)
        at(c, r, first)
        pts = at(c, r, second)
        dev = r.sample(second)["dev"]
        # Instantaneous readings are the captured ones, in base units.
        assert one(pts, "hw.gpu.utilization", hw__gpu__task="general") == dev["util"]["ok"]["gpu"] / 100
        assert one(pts, "infersight.gpu.memory_controller.utilization") == dev["util"]["ok"]["memory"] / 100
        assert one(pts, "hw.power") == dev["power_mw"]["ok"] / 1000
        assert one(pts, "hw.energy") == dev["energy_mj"]["ok"] / 1000
        assert one(pts, "hw.temperature", hw__sensor_location="gpu") == dev["temp_c"]["ok"]
        assert one(pts, "infersight.gpu.clock.frequency", infersight__gpu__clock="sm") == dev["clock_sm"]["ok"] * 1e6
        assert one(pts, "hw.gpu.memory.usage") == dev["mem_v2"]["ok"]["used"]
        assert one(pts, "infersight.gpu.memory.reserved") == dev["mem_v2"]["ok"]["reserved"]
        assert one(pts, "hw.gpu.memory.limit") == 150754820096
        assert status(pts, UUID) == "ok"
        seen[phase] = pts
    mm, mc = seen["matmul_bf16"], seen["memcopy"]
    # The point of GPM: both loads keep the GPU "100 % utilised"...
    assert one(mm, "hw.gpu.utilization", hw__gpu__task="general") >= 0.99
    assert one(mc, "hw.gpu.utilization", hw__gpu__task="general") == 1.0
    # ...but one is tensor-bound and the other memory-bound.
    assert gpm(mm, "tensor") == pytest.approx(0.93, abs=0.01)
    assert gpm(mm, "tensor_hmma") == pytest.approx(0.93, abs=0.01)
    assert gpm(mm, name="infersight.gpu.dram.activity") == pytest.approx(0.17, abs=0.01)
    assert gpm(mc, "tensor") == 0.0
    assert gpm(mc, name="infersight.gpu.dram.activity") == pytest.approx(0.88, abs=0.01)
    assert gpm(mm, name="infersight.gpu.sm.occupancy") == pytest.approx(0.14, abs=0.01)
    assert gpm(mc, name="infersight.gpu.sm.occupancy") == pytest.approx(0.80, abs=0.01)
    for idle in (seen["idle"], seen["idle_after"]):
        assert one(idle, "hw.gpu.utilization", hw__gpu__task="general") == 0
        assert gpm(idle, "tensor") == 0.0
        assert gpm(idle, name="infersight.gpu.dram.activity") < 0.001
    # Clock-event reasons are named states: idle clocks at rest, power capping under matmul.
    assert one(seen["idle"], "infersight.gpu.clock.event", infersight__gpu__clock__event_reason="gpu_idle") == 1
    assert one(mm, "infersight.gpu.clock.event", infersight__gpu__clock__event_reason="sw_power_cap") == 1
    assert one(mm, "infersight.gpu.clock.event", infersight__gpu__clock__event_reason="gpu_idle") == 0


def test_gpm_window_spans_the_whole_collection_interval():
    """Metrics come from the previous collect's sample to this one, whatever happened between."""
    r = replay()
    c = collector(r)
    mm = r.steps("matmul_bf16")
    at(c, r, mm[0] - 1)  # last idle step
    pts = at(c, r, mm[-1])  # whole matmul phase, including its ramp-up
    series = r._series
    num = sum(s["gpm"]["NVML_GPM_METRIC_ANY_TENSOR_UTIL"]["value"] * (s["t"] - series[i - 1]["t"])
              for i, s in enumerate(series) if mm[0] <= i <= mm[-1])
    expected = num / (series[mm[-1]]["t"] - series[mm[0] - 1]["t"]) / 100
    assert gpm(pts, "tensor") == pytest.approx(expected, rel=1e-9)
    assert 0.3 < expected < 0.9  # the mixed window is neither idle nor the steady 93 %


def test_first_collect_has_no_gpm_and_io_counters_accumulate():
    r = replay()
    c = collector(r)
    first = at(c, r, 50)
    assert not pick(first, "infersight.gpu.pipe.utilization")
    # Without a GPM window, PCIe throughput comes from NVML's own short sample (KB/s).
    assert one(first, "infersight.gpu.pcie.throughput", network__io__direction="receive") == \
        r.sample(50)["dev"]["pcie_rx_kbs"]["ok"] * 1024
    totals = []
    for step in (55, 60, 70):
        pts = at(c, r, step)
        assert not pick(pts, "infersight.gpu.pcie.throughput")
        totals.append(one(pts, "hw.gpu.io", network__io__direction="receive", infersight__gpu__link="pcie"))
    assert totals[0] < totals[1] < totals[2]
    series = r._series
    expected = sum(series[i]["gpm"]["NVML_GPM_METRIC_PCIE_RX_PER_SEC"]["value"] * (series[i]["t"] - series[i - 1]["t"])
                   for i in range(51, 71)) * 1024 * 1024
    assert totals[2] == pytest.approx(expected, abs=1)
    io = pick(pts, "hw.gpu.io")
    assert all(p.kind == "counter" and p.start_time_ns for p in io)


# -- robustness ---------------------------------------------------------------------------------
def test_not_supported_is_asked_once_per_device():
    r = replay(gpus=2)
    c = collector(r)
    for step in range(40, 45):
        at(c, r, step)
    for gpu in (0, 1):
        # 18 captured links answer NOT_SUPPORTED, the 19th INVALID_ARGUMENT: discovered once.
        assert r.calls[("nvmlDeviceGetNvLinkState", gpu)] == 19
        assert r.calls[("nvmlDeviceGetEncoderUtilization", gpu)] == 1
        assert r.calls[("nvmlDeviceGetFieldValues", gpu)] == 1
        # Volatile ECC answers every time; aggregate ECC (not captured: NOT_SUPPORTED) once.
        assert r.calls[("nvmlDeviceGetTotalEccErrors", gpu)] == 2 * 5 + 2
        assert r.calls[("nvmlDeviceGetUtilizationRates", gpu)] == 5


def test_missing_library_reported_once_and_nothing_emitted(caplog):
    c = NvmlCollector(None)
    with caplog.at_level(logging.WARNING):
        assert list(c.collect()) == []
        assert list(c.collect()) == []
    assert [r.message for r in caplog.records].count(
        "nvml collector disabled: the nvidia-ml-py package (pynvml) is not installed; "
        "no GPU metrics will be reported") == 1
    c.close()


def test_real_pynvml_without_driver_library(caplog):
    """The real binding on a host without libnvidia-ml: from_config works, collect reports once."""
    pynvml = pytest.importorskip("pynvml")
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError:
        pass
    else:
        pynvml.nvmlShutdown()
        pytest.skip("NVML is available on this host")
    c = NvmlCollector.from_config(NvmlCollector.Config(type="nvml"))
    with caplog.at_level(logging.WARNING):
        assert list(c.collect()) == [] and list(c.collect()) == []
    disabled = [r for r in caplog.records if "nvml collector disabled" in r.message]
    assert len(disabled) == 1 and "Library Not Found" in disabled[0].message
    c.close()


def test_lost_gpu_is_failed_not_a_crash():
    r = replay(gpus=2)
    c = collector(r)
    before = at(c, r, 60)
    lost_id = f"{UUID[:-4]}0001"
    assert status(before, UUID) == "ok" and status(before, lost_id) == "ok"
    r.lose(1)
    after = at(c, r, 61)
    assert status(after, lost_id) == "failed"
    assert {p.name for p in after if p.attributes.get("hw.id") == lost_id} == {"hw.status",
                                                                                "infersight.gpu.reachable"}
    assert one(after, "infersight.gpu.reachable", hw__id=lost_id) == 0
    assert one(after, "infersight.gpu.reachable", hw__id=UUID) == 1
    failed = pick(after, "hw.status", hw__id=lost_id, hw__state="failed")[0]
    assert failed.attributes["hw.model"] == "NVIDIA H200"  # identity kept from before the loss
    assert status(after, UUID) == "ok"
    assert one(after, "hw.gpu.utilization", hw__id=UUID, hw__gpu__task="general") == \
        r.sample(61)["dev"]["util"]["ok"]["gpu"] / 100


def test_gpu_lost_before_the_first_collect():
    r = replay(gpus=2)
    r.lose(1)
    pts = at(collector(r), r, 10)
    assert status(pts, "gpu1") == "failed"
    assert status(pts, UUID) == "ok"


def test_xid_counter_and_last_code_do_not_stick():
    r = replay()
    c = collector(r)
    r.inject_xid(0, 13)  # graphics engine exception: the application's fault
    r.inject_xid(0, 13)
    pts = at(c, r, 60)
    assert one(pts, "hw.errors", error__type="xid", hw__gpu__xid=13) == 2
    assert one(pts, "infersight.gpu.xid.last") == 13
    assert status(pts, UUID) == "ok"
    pts = at(c, r, 61)
    assert one(pts, "hw.errors", error__type="xid", hw__gpu__xid=13) == 2  # cumulative
    assert one(pts, "infersight.gpu.xid.last") == 0  # nothing new this interval
    r.inject_xid(0, 48)  # double-bit ECC error
    pts = at(c, r, 62)
    assert one(pts, "hw.errors", error__type="xid", hw__gpu__xid=48) == 1
    assert one(pts, "infersight.gpu.xid.last") == 48
    assert status(pts, UUID) == "degraded"
    r.inject_xid(0, 79)  # fallen off the bus
    assert status(at(c, r, 63), UUID) == "failed"
    assert status(at(c, r, 64), UUID) == "ok"


class _BlockingReplay(ReplayNvml):
    """Holds the first utilisation query until released, like a GPU stuck in a slow NVML call."""

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.entered, self.release = threading.Event(), threading.Event()

    def nvmlDeviceGetUtilizationRates(self, h):
        self.entered.set()
        assert self.release.wait(10)
        return super().nvmlDeviceGetUtilizationRates(h)


def test_overlapping_collect_returns_nothing_instead_of_piling_up():
    r = _BlockingReplay(CAPTURE)
    c = collector(r)
    r.seek(60)
    results: list[list[Point]] = []
    t = threading.Thread(target=lambda: results.append(list(c.collect())))
    t.start()
    assert r.entered.wait(10)
    assert list(c.collect()) == []  # the agent timed out the first one and came back
    r.release.set()
    t.join(10)
    assert status(results[0], UUID) == "ok" and pick(results[0], "hw.gpu.utilization")
    assert list(c.collect())  # and the next one runs normally


# -- MIG and processes ----------------------------------------------------------------------------
def test_mig_instances_report_memory_gpm_and_processes():
    migs = [MigInstance(1, 0, "MIG-11111111-2222-3333-4444-555555555555", 71 * 2**30, 5 * 2**30, pids=(430,)),
            MigInstance(2, 0, "MIG-66666666-7777-8888-9999-000000000000", 71 * 2**30, 0)]
    r = replay(mig=migs, process_memory={430: 1_073_741_824})
    c = collector(r)
    at(c, r, 55)
    pts = at(c, r, 65)
    for m in migs:
        attrs = {"hw__id": m.uuid, "hw__parent": UUID, "infersight__gpu__mig__gpu_instance_id": m.gpu_instance_id}
        assert one(pts, "hw.gpu.memory.usage", **attrs) == m.memory_used
        assert one(pts, "hw.gpu.memory.limit", **attrs) == m.memory_total
        assert one(pts, "infersight.gpu.pipe.utilization", infersight__gpu__pipe="tensor", **attrs) == \
            pytest.approx(0.93, abs=0.01)
    assert one(pts, "infersight.gpu.process.memory.usage", process__pid=430) == 1_073_741_824
    assert pick(pts, "infersight.gpu.process.memory.usage")[0].attributes["hw.id"] == migs[0].uuid
    # In MIG mode GPM is per instance only.
    assert not pick(pts, "infersight.gpu.pipe.utilization", hw__id=UUID)


def test_processes_attributed_to_pod_and_container(tmp_path):
    for pid, cgroup, comm in ((430, KUBEPODS_V2, "python3"), (460, DOCKER_V1, "memcopy")):
        (tmp_path / str(pid)).mkdir()
        (tmp_path / str(pid) / "cgroup").write_text(cgroup)
        (tmp_path / str(pid) / "comm").write_text(comm + "\n")
    r = replay(process_memory={430: 1_156_579_328})
    c = collector(r, proc_root=tmp_path)
    idle = at(c, r, 20)
    assert not pick(idle, "infersight.gpu.process.utilization")
    pts = at(c, r, 60)
    util = pick(pts, "infersight.gpu.process.utilization", process__pid=430, hw__gpu__task="general")
    assert [p.value for p in util] == [r.sample(60)["proc_util"]["ok"][0]["smUtil"] / 100]
    assert util[0].attributes["k8s.pod.uid"] == POD_UID
    assert util[0].attributes["container.id"] == K8S_CONTAINER
    assert util[0].attributes["process.executable.name"] == "python3"
    assert one(pts, "infersight.gpu.process.memory.usage", process__pid=430) == 1_156_579_328
    pts = at(c, r, 100)
    mc = pick(pts, "infersight.gpu.process.memory_controller.utilization", process__pid=460)
    assert [p.value for p in mc] == [1.0]
    assert mc[0].attributes["container.id"] == DOCKER_CONTAINER and "k8s.pod.uid" not in mc[0].attributes
    # Memory NVML cannot tell (the capture did not keep it) is left out, not reported as 0.
    assert not pick(pts, "infersight.gpu.process.memory.usage", process__pid=460)


@pytest.mark.parametrize(("text", "expected"), [
    (KUBEPODS_V2, {"k8s.pod.uid": POD_UID, "container.id": K8S_CONTAINER}),
    (DOCKER_V1, {"container.id": DOCKER_CONTAINER}),
    (f"11:memory:/kubepods/besteffort/pod{POD_UID}/{K8S_CONTAINER}\n",
     {"k8s.pod.uid": POD_UID, "container.id": K8S_CONTAINER}),
    (f"0::/kubepods.slice/kubepods-pod{POD_UID.replace('-', '_')}.slice/crio-{K8S_CONTAINER}.scope\n",
     {"k8s.pod.uid": POD_UID, "container.id": K8S_CONTAINER}),
    (f"0::/system.slice/docker-{DOCKER_CONTAINER}.scope\n", {"container.id": DOCKER_CONTAINER}),
    ("0::/user.slice/user-1000.slice/session-3.scope\n", {}),
    ("0::/system.slice/docker.service\n", {}),
])
def test_parse_cgroup(text, expected):
    assert parse_cgroup(text) == expected


# -- contract ---------------------------------------------------------------------------------------
def test_every_emitted_point_is_in_the_metric_list(tmp_path):
    (tmp_path / "430").mkdir()
    (tmp_path / "430" / "cgroup").write_text(KUBEPODS_V2)
    specs = {s.name: s for s in NvmlCollector.metrics}
    assert len(specs) == len(NvmlCollector.metrics)
    emitted: list[Point] = []
    variants = [dict(gpus=2), dict(mig=[MigInstance(1, 0, "MIG-x", 2**30, 0, pids=(430, 460))]),
                dict(process_memory={430: 1, 460: 2}), dict(gpus=1)]
    for i, kw in enumerate(variants):
        r = replay(**kw)
        c = collector(r, proc_root=tmp_path, gpm=i != 3)
        r.inject_xid(0, 48)
        for step in range(0, 136, 9):
            if step > 100 and "gpus" in kw:
                r.lose(kw["gpus"] - 1)
            emitted += at(c, r, step)
        c.close()
    for p in emitted:
        spec = specs.get(p.name)
        assert spec is not None, p.name
        assert (p.kind, p.unit) == (spec.kind, spec.unit), p.name
        assert set(p.attributes) <= set(spec.attributes), (p.name, set(p.attributes) - set(spec.attributes))
        assert {"hw.id", "hw.type"} <= set(p.attributes)
    # All of the list is emitted but what the capture answered NOT_SUPPORTED (NVLink, lifetime ECC).
    assert {p.name for p in emitted} == set(specs) - {"infersight.gpu.nvlink.state",
                                                      "infersight.gpu.ecc.aggregate_errors"}


def test_health_contract_for_the_slo_engine():
    r = replay()
    pts = at(collector(r), r, 0)
    st = pick(pts, "hw.status")
    assert {p.attributes["hw.state"] for p in st} == {"ok", "degraded", "failed"}
    assert all(p.kind == "updowncounter" and p.attributes["hw.type"] == "gpu" and p.attributes["hw.id"] == UUID
               for p in st)


def test_config_is_typed_and_rejects_unknown_keys():
    cfg = parse_config({"collectors": [{"type": "nvml", "proc_root": "/host/proc", "gpm": False}]})
    entry = cfg.collectors[0]
    assert isinstance(entry, NvmlCollector.Config) and entry.proc_root == Path("/host/proc") and not entry.gpm
    with pytest.raises(ConfigError, match=r"unknown key 'collectors\.(0\.)?gpms'"):
        parse_config({"collectors": [{"type": "nvml", "gpms": True}]})


class _HealthReplay(ReplayNvml):
    """The capture with what it never saw: memory temperature, throttling and row-remap trouble."""

    reasons = None
    rows = None

    def nvmlDeviceGetFieldValues(self, h, field_ids):
        self._enter("nvmlDeviceGetFieldValues", h)
        assert field_ids == [self.NVML_FI_DEV_MEMORY_TEMP]
        from types import SimpleNamespace
        return [SimpleNamespace(nvmlReturn=0, valueType=1, value=SimpleNamespace(uiVal=61))]

    def nvmlDeviceGetCurrentClocksEventReasons(self, h):
        real = super().nvmlDeviceGetCurrentClocksEventReasons(h)
        return real if self.reasons is None else self.reasons

    def nvmlDeviceGetRemappedRows(self, h):
        real = super().nvmlDeviceGetRemappedRows(h)
        return real if self.rows is None else self.rows


def test_memory_temperature_throttling_and_row_remaps_set_health():
    r = _HealthReplay(CAPTURE)
    c = collector(r)
    pts = at(c, r, 60)
    assert one(pts, "hw.temperature", hw__sensor_location="memory") == 61
    assert status(pts, UUID) == "ok"
    r.reasons = 0x40  # hardware thermal slowdown
    pts = at(c, r, 61)
    assert one(pts, "infersight.gpu.clock.event", infersight__gpu__clock__event_reason="hw_thermal_slowdown") == 1
    assert status(pts, UUID) == "degraded"
    r.reasons, r.rows = None, (0, 1, 1, 0)  # an uncorrectable error's row waits for a reset
    pts = at(c, r, 62)
    assert one(pts, "infersight.gpu.memory.remap.pending") == 1
    assert one(pts, "infersight.gpu.memory.remapped_rows", infersight__gpu__remap__cause="uncorrectable") == 1
    assert status(pts, UUID) == "degraded"
    r.rows = (0, 1, 0, 1)  # the remap failed: the GPU needs service
    assert status(at(c, r, 63), UUID) == "failed"
