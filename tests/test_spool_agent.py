"""The spool end to end: a real agent subprocess against a receiver that goes away and comes back."""
from __future__ import annotations

import json
import subprocess
import sys
import time
from collections import Counter

import psutil

from infersight.collectors.host import METRICS
from support.agent_proc import AgentProc, spool_files, spooled, wait_for, write_config
from support.otlp_recorder import Recorder


def point_identities(recorder) -> list[tuple]:
    return [(name, dp.time_unix_nano, tuple(sorted((kv.key, str(kv.value)) for kv in dp.attributes)))
            for r in recorder.accepted() for name, dp in r.points()]


def assert_exactly_once(recorder, expected: dict[str, int]) -> None:
    accepted = Counter(r.key for r in recorder.accepted())
    assert set(accepted) == set(expected), "every spooled batch arrives, and nothing else"
    assert max(accepted.values()) == 1, "no batch is accepted twice"
    for r in recorder.accepted():
        assert len(r.points()) == expected[r.key]
    ids = point_identities(recorder)
    assert len(ids) == len(set(ids)) == sum(expected.values())


def test_receiver_down_then_back_every_batch_once(tmp_path, port):
    recorder = Recorder(port).start()
    spool_dir = tmp_path / "spool"
    agent = AgentProc(write_config(tmp_path / "agent.yaml", recorder.url, spool_dir), tmp_path / "agent.log")
    try:
        wait_for(lambda: len(recorder.accepted()) >= 2, 20, "first exports")
        recorder.stop()
        wait_for(lambda: len(spool_files(spool_dir)) >= 3, 20, "batches to pile up in the spool")
        recorder.start()
        wait_for(lambda: not spool_files(spool_dir), 20, "the spool to drain")
    finally:
        rc = agent.terminate()
        recorder.stop()
    assert rc == 0
    log = agent.log()
    assert "export failed (connection)" in log
    assert_exactly_once(recorder, spooled(log))
    # Resource attributes from config and host identity are on every batch.
    for r in recorder.accepted():
        attrs = {kv.key: kv.value.string_value for kv in r.request.resource_metrics[0].resource.attributes}
        assert attrs["service.name"] == "spool-test" and attrs["deployment.environment"] == "test"
        assert attrs["host.name"] and "cloud.provider" not in attrs


def test_sigkill_while_spooling_then_restart_loses_nothing(tmp_path, port):
    spool_dir = tmp_path / "spool"
    config = write_config(tmp_path / "agent.yaml", f"http://127.0.0.1:{port}", spool_dir)
    first = AgentProc(config, tmp_path / "agent1.log")
    try:
        wait_for(lambda: len(spool_files(spool_dir)) >= 4, 20, "batches in the spool")
    finally:
        first.kill()
    left_behind = spool_files(spool_dir)
    assert left_behind
    recorder = Recorder(port).start()
    second = AgentProc(config, tmp_path / "agent2.log")
    try:
        wait_for(lambda: set(left_behind) <= {r.key for r in recorder.accepted()}, 20, "old batches re-sent")
    finally:
        rc = second.terminate()
        recorder.stop()
    assert rc == 0
    assert f"{len(left_behind)} pending batches" in second.log()
    expected = {**spooled(first.log()), **left_behind, **spooled(second.log())}
    assert_exactly_once(recorder, expected)
    # The batches from before the kill go first, in the order they were spooled.
    assert [r.key for r in recorder.accepted()][:len(left_behind)] == list(left_behind)


def test_sigterm_exports_what_is_buffered(tmp_path, port):
    recorder = Recorder(port).start()
    config = write_config(tmp_path / "agent.yaml", recorder.url, tmp_path / "spool", export_interval_seconds=60)
    agent = AgentProc(config, tmp_path / "agent.log")
    try:
        wait_for(lambda: "agent started" in agent.log(), 20, "agent start")
        time.sleep(1.0)
        assert recorder.received == []  # the 60 s export interval has not come round
    finally:
        rc = agent.terminate()
        recorder.stop()
    assert rc == 0
    (batch,) = recorder.accepted()
    names = {n for n, _ in batch.points()}
    assert "system.cpu.time" in names and "infersight.agent.points.collected" in names
    assert "agent stopped; 0 batches left in the spool" in agent.log()


def test_collect_json_prints_what_would_be_sent(tmp_path):
    cfg = tmp_path / "node.yaml"
    cfg.write_text("resource: {service_name: node-debug}\ncollectors:\n  - {type: host, process_names: [python3]}\n")
    out = subprocess.run([sys.executable, "-m", "infersight.cli", "collect", "--config", str(cfg), "--format", "json"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    rows = json.loads(out.stdout)
    specs = {m.name: m for m in METRICS}
    assert rows and {"system.cpu.time", "system.memory.usage", "system.network.io"} <= {r["name"] for r in rows}
    for r in rows:
        assert {"name", "unit", "type", "value", "attributes", "resource"} <= set(r)
        assert (r["type"], r["unit"]) == (specs[r["name"]].kind, specs[r["name"]].unit)
        assert r["resource"]["service.name"] == "node-debug" and r["collector"] == "host"


def test_collect_rejects_unknown_key_naming_file(tmp_path):
    cfg = tmp_path / "node.yaml"
    cfg.write_text("agent:\n  exporter: {endpoint: 'http://127.0.0.1:1', spool_bytes: 5}\n")
    out = subprocess.run([sys.executable, "-m", "infersight.cli", "collect", "--config", str(cfg)],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2
    assert f"{cfg}: unknown key 'agent.exporter.spool_bytes'" in out.stderr


def test_collect_table(tmp_path):
    cfg = tmp_path / "node.yaml"
    cfg.write_text("collectors:\n  - {type: host}\n")
    out = subprocess.run([sys.executable, "-m", "infersight.cli", "collect", "--config", str(cfg), "--format", "table"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].startswith("resource: service.name=infersight-agent, host.name=")
    assert lines[1].split() == ["COLLECTOR", "NAME", "TYPE", "UNIT", "VALUE", "ATTRIBUTES"]
    (limit,) = [line.split() for line in lines if line.split()[1:2] == ["system.memory.limit"]]
    assert limit[:4] == ["host", "system.memory.limit", "updowncounter", "By"]
    assert int(limit[4]) == psutil.virtual_memory().total  # exact, not 1.6e+10


def test_second_agent_on_the_same_spool_refuses_to_start(tmp_path, port):
    config = write_config(tmp_path / "agent.yaml", f"http://127.0.0.1:{port}", tmp_path / "spool")
    first = AgentProc(config, tmp_path / "agent1.log")
    try:
        wait_for(lambda: "agent started" in first.log(), 20, "first agent")
        second = AgentProc(config, tmp_path / "agent2.log")
        assert second.proc.wait(20) == 2
        assert "spool directory" in second.log() and "in use by another agent" in second.log()
    finally:
        assert first.terminate() == 0
