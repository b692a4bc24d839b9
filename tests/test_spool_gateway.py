"""The spool against the real gateway (`infersight server` subprocess, embedded chDB): rows counted in storage."""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from support.agent_proc import AgentProc, spool_files, spooled, wait_for, write_config

pytest.importorskip("chdb")

TABLES = ("otel_metrics_gauge", "otel_metrics_sum", "otel_metrics_histogram")


class Gateway:
    def __init__(self, data_dir: Path, port: int, log_path: Path) -> None:
        self.url = f"http://127.0.0.1:{port}"
        # A short flush interval: each acknowledged request waits for its flush, and the agent
        # drains its spool one request at a time.
        config = log_path.with_name("server.yaml")
        config.write_text("server: {flush_interval_seconds: 0.05}\n")
        self._cmd = [sys.executable, "-m", "infersight.cli", "server", "--config", str(config),
                     "--data-dir", str(data_dir), "--listen", f"127.0.0.1:{port}"]
        self._log_path = log_path
        self.proc: subprocess.Popen | None = None

    def start(self) -> Gateway:
        with open(self._log_path, "ab") as log:
            self.proc = subprocess.Popen(self._cmd, stdout=log, stderr=log)
        wait_for(self._ready, 30, "gateway /readyz")
        return self

    def _ready(self) -> bool:
        assert self.proc.poll() is None, self._log_path.read_text()
        try:
            with urllib.request.urlopen(f"{self.url}/readyz", timeout=1) as r:
                return r.status == 200
        except OSError:
            return False

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(30)

    def rows(self, service: str) -> int:
        sql = " + ".join(f"(SELECT count() FROM otel.{t} WHERE ServiceName = '{service}')" for t in TABLES)
        body = json.dumps({"sql": f"SELECT {sql} AS n"}).encode()
        req = urllib.request.Request(f"{self.url}/api/v1/query", data=body,
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=30) as r:
            return int(json.loads(r.read())["rows"][0]["n"])


@pytest.fixture
def gateway(tmp_path, port):
    gw = Gateway(tmp_path / "data", port, tmp_path / "gateway.log")
    yield gw
    gw.stop()


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "sigkill"])
def test_gateway_down_and_back_every_point_once(tmp_path, gateway, stop_signal):
    """With SIGKILL the gateway can die after a durable write but before the ack: the agent re-sends
    under the same Idempotency-Key and the gateway must not store the rows twice."""
    spool_dir = tmp_path / "spool"
    gateway.start()
    agent = AgentProc(write_config(tmp_path / "agent.yaml", gateway.url, spool_dir), tmp_path / "agent.log")
    try:
        wait_for(lambda: agent.log().count("exported batch") >= 2, 30, "exports to the gateway")
        gateway.stop(stop_signal)
        wait_for(lambda: len(spool_files(spool_dir)) >= 2, 30, "batches to pile up in the spool")
        left_behind = set(spool_files(spool_dir))
        gateway.start()
        # What piled up while the gateway was down is delivered; the agent keeps adding a batch every 0.3 s,
        # so "the spool is empty" would race with it on a loaded machine.
        wait_for(lambda: agent.log().count("export failed") >= 1 and not left_behind & set(spool_files(spool_dir)),
                 120, "the batches spooled while the gateway was down to be delivered")
    finally:
        rc = agent.terminate()
    assert rc == 0
    drained = drain(tmp_path, gateway.url, spool_dir)
    expected = {**spooled(agent.log()), **drained}
    assert left_behind <= set(expected)
    assert gateway.rows("spool-test") == sum(expected.values())


def drain(tmp_path: Path, endpoint: str, spool_dir: Path) -> dict[str, int]:
    """Send what is left in the spool with an agent that collects (and reports on itself) once an hour, so the
    spool empties for good.
    Returns the batches that agent spooled itself."""
    config = write_config(tmp_path / "drain.yaml", endpoint, spool_dir, collect_seconds=3600,
                          self_metrics_seconds=3600)
    patient = AgentProc(config, tmp_path / "drain.log")
    try:
        wait_for(lambda: "spooled batch" in patient.log() and not spool_files(spool_dir), 120, "the spool to drain")
    finally:
        assert patient.terminate() == 0
    return spooled(patient.log())


def test_agent_sigkill_while_spooling_then_restart(tmp_path, gateway):
    spool_dir = tmp_path / "spool"
    config = write_config(tmp_path / "agent.yaml", gateway.url, spool_dir)
    first = AgentProc(config, tmp_path / "agent1.log")  # the gateway is not up yet: everything spools
    try:
        wait_for(lambda: len(spool_files(spool_dir)) >= 4, 30, "batches in the spool")
    finally:
        first.kill()
    left_behind = spool_files(spool_dir)
    gateway.start()
    second = AgentProc(config, tmp_path / "agent2.log")
    try:
        wait_for(lambda: not set(left_behind) & set(spool_files(spool_dir)), 30, "old batches delivered")
    finally:
        rc = second.terminate()
    assert rc == 0
    expected = {**spooled(first.log()), **left_behind, **spooled(second.log())}
    assert set(left_behind) <= set(expected)
    assert gateway.rows("spool-test") == sum(expected.values())


def test_resend_after_unclear_failure_is_not_stored_twice(tmp_path, gateway):
    """The agent gives up waiting (timeout) after the gateway has the batch: the re-send carries the
    same Idempotency-Key, so storage holds every point once."""
    spool_dir = tmp_path / "spool"
    gateway.start()
    config = write_config(tmp_path / "agent.yaml", gateway.url, spool_dir, timeout_seconds=0.02)
    agent = AgentProc(config, tmp_path / "agent.log")
    try:
        wait_for(lambda: agent.log().count("export failed (timeout)") >= 2
                 and agent.log().count("exported batch") >= 2, 30, "timed-out sends, then acknowledged re-sends")
    finally:
        rc = agent.terminate()
    assert rc == 0
    # The final export may itself have timed out after the gateway stored it: drain it with a patient agent.
    expected = {**spooled(agent.log()), **drain(tmp_path, gateway.url, spool_dir)}
    assert gateway.rows("spool-test") == sum(expected.values())
