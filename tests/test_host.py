"""Host collector: its metric list against what it emits from this machine's real psutil."""
from __future__ import annotations

import subprocess
import time
from collections import namedtuple
from types import SimpleNamespace

import psutil
import pytest

from infersight.collectors.host import METRICS, HostCollector, HostConfig
from infersight.collectors.registry import collector_class
from infersight.config import ConfigError, parse_config

SPECS = {m.name: m for m in METRICS}


@pytest.fixture
def sleeper():
    proc = subprocess.Popen(["sleep", "60"])
    yield proc
    proc.kill()
    proc.wait()


def check_against_list(points):
    for p in points:
        spec = SPECS.get(p.name)
        assert spec is not None, f"{p.name} is not in the published metric list"
        assert (p.kind, p.unit) == (spec.kind, spec.unit), p.name
        assert set(p.attributes) <= set(spec.attributes), (p.name, p.attributes)


def test_emitted_points_match_the_published_list(sleeper):
    collector = HostCollector(psutil, process_names=["sleep"], exclude_disks=("loop*", "ram*", "zram*"))
    first = collector.collect()
    time.sleep(0.1)  # CPU times tick every 10 ms: two collects in one tick have no utilization yet
    second = collector.collect()
    check_against_list(first + second)
    expected = set(SPECS)
    if not any(not d.startswith(("loop", "ram", "zram")) for d in psutil.disk_io_counters(perdisk=True) or {}):
        expected -= {"system.disk.io", "system.disk.operations"}
    assert {p.name for p in second} == expected
    # Utilizations need a previous sample: absent from the first collect.
    assert not {"system.cpu.utilization", "process.cpu.utilization"} & {p.name for p in first}

    mine = [p for p in second if p.attributes.get("process.pid") == sleeper.pid]
    assert {p.name for p in mine} == {"process.cpu.time", "process.cpu.utilization", "process.memory.usage"}
    assert all(p.attributes["process.executable.name"] == "sleep" for p in mine)
    rss = next(p for p in mine if p.name == "process.memory.usage")
    assert 0 < rss.value < psutil.virtual_memory().total

    util = {p.attributes["cpu.mode"]: p.value for p in second if p.name == "system.cpu.utilization"}
    assert abs(sum(util.values()) - 1.0) < 1e-9
    mem = {p.attributes["system.memory.state"]: p.value for p in second if p.name == "system.memory.usage"}
    assert set(mem) == {"used", "free", "buffers", "cached"}
    limit = next(p.value for p in second if p.name == "system.memory.limit")
    assert limit == psutil.virtual_memory().total and mem["used"] < limit
    assert not any(p.attributes.get("system.device", "").startswith("loop") for p in second)
    nics = {p.attributes["network.interface.name"] for p in second if p.name == "system.network.io"}
    assert "lo" in nics


CpuTimes = namedtuple("CpuTimes", "user nice system idle iowait irq softirq steal")
ProcTimes = namedtuple("ProcTimes", "user system")
Mem = namedtuple("Mem", "total available used free buffers cached")
ProcMem = namedtuple("ProcMem", "rss vms")


class ScriptedPs:
    """psutil-shaped source with chosen numbers, to check the delta arithmetic exactly."""

    def __init__(self):
        self.cpu = CpuTimes(10, 0, 5, 85, 0, 0, 0, 0)
        self.procs = [{"pid": 7, "name": "vllm", "cpu_times": ProcTimes(1.0, 1.0), "memory_info": ProcMem(500, 900)},
                      {"pid": 8, "name": "vllm", "cpu_times": None, "memory_info": None}]  # access denied

    def cpu_times(self):
        return self.cpu

    def cpu_count(self, logical=True):
        return 4

    def getloadavg(self):
        return (1.5, 1.0, 0.5)

    def virtual_memory(self):
        return Mem(1000, 600, 300, 400, 100, 200)

    def disk_io_counters(self, perdisk=True):
        return None  # what psutil returns on hosts without disk stats

    def net_io_counters(self, pernic=True):
        return {}

    def process_iter(self, attrs):
        return [SimpleNamespace(info=dict(p)) for p in self.procs]


def test_utilization_arithmetic_and_denied_processes():
    ps, now = ScriptedPs(), [100.0]
    collector = HostCollector(ps, process_names=["vllm"], clock=lambda: now[0])
    collector.collect()
    ps.cpu = CpuTimes(40, 0, 15, 145, 0, 0, 0, 0)  # +30 user, +10 system, +60 idle
    ps.procs[0]["cpu_times"] = ProcTimes(3.0, 2.0)  # +3 s CPU over 2 s wall on 4 CPUs
    now[0] = 102.0
    points = collector.collect()
    check_against_list(points)
    util = {p.attributes["cpu.mode"]: p.value for p in points if p.name == "system.cpu.utilization"}
    assert util["user"] == 0.3 and util["system"] == 0.1 and util["idle"] == 0.6
    (proc_util,) = [p for p in points if p.name == "process.cpu.utilization"]
    assert proc_util.value == 3.0 / (2.0 * 4) and proc_util.attributes["process.pid"] == 7
    assert not [p for p in points if p.attributes.get("process.pid") == 8]
    assert {p.attributes["system.memory.state"]: p.value for p in points
            if p.name == "system.memory.utilization"} == {"used": 0.3, "free": 0.4, "buffers": 0.1, "cached": 0.2}
    assert [p.value for p in points if p.name.startswith("system.cpu.load_average")] == [1.5, 1.0, 0.5]
    assert not [p for p in points if p.name.startswith("system.disk")]


def test_config_and_entry_point():
    assert collector_class("host") is HostCollector
    cfg = parse_config({"collectors": [{"type": "host", "interval_seconds": 5, "process_names": ["vllm"]}]})
    (entry,) = cfg.collectors
    assert isinstance(entry, HostConfig) and entry.process_names == ("vllm",)
    assert isinstance(HostCollector.from_config(entry), HostCollector)
    with pytest.raises(ConfigError, match=r"node.yaml: unknown key 'collectors\.(0\.)?proces_names'"):
        parse_config({"collectors": [{"type": "host", "proces_names": ["vllm"]}]}, "node.yaml")
