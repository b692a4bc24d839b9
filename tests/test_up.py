"""`infersight up` (what `make run` starts): server + agent, host metrics land in the store."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import yaml

from infersight.cli.up import agent_config, write_generated
from support.net import free_port


def _query(base: str, sql: str) -> list[dict]:
    req = urllib.request.Request(f"{base}/api/v1/query", data=json.dumps({"sql": sql}).encode(),
                                 headers={"Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.load(resp)["rows"]


def test_up_runs_server_and_agent_and_stops_cleanly(tmp_path):
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    # --config: listen address and data dir from the server's own configuration.
    (tmp_path / "server.yaml").write_text(f"server: {{listen: '127.0.0.1:{port}', data_dir: '{tmp_path / 'data'}'}}\n")
    proc = subprocess.Popen(
        [sys.executable, "-m", "infersight.cli", "up", "--config", str(tmp_path / "server.yaml"),
         "--interval-seconds", "1"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        rows: list[dict] = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not rows:
            time.sleep(1)
            assert proc.poll() is None, proc.stdout.read()
            try:
                rows = _query(base, "SELECT ResourceAttributes['host.name'] AS host, count() AS n "
                                    "FROM otel.otel_metrics_gauge WHERE MetricName = 'system.memory.utilization' "
                                    "GROUP BY host")
            except (urllib.error.URLError, ConnectionError):
                continue
        assert rows, "no host metrics arrived through up's agent"
        assert rows[0]["host"] and int(rows[0]["n"]) > 0
        # Loopback without a token: a foreign Host (DNS rebinding) and a text/plain POST (CSRF) are refused.
        for headers, status in (({"Host": "evil.example"}, 421), ({"Content-Type": "text/plain"}, 415)):
            req = urllib.request.Request(f"{base}/api/v1/silences", method="POST", headers=headers, data=json.dumps(
                {"matchers": [{"name": "slo", "value": ".*", "isRegex": True}], "duration": "720h"}).encode())
            try:
                urllib.request.urlopen(req, timeout=10)
            except urllib.error.HTTPError as err:
                assert err.code == status
            else:
                raise AssertionError(f"{headers} was accepted")
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, out
    assert f"send OTLP/HTTP to   {base}/v1/metrics" in out
    assert "stop with Ctrl-C" in out
    assert "-H 'Content-Type: application/json'" in out  # the curl hint sends what the server accepts
    # Nothing left in the spool: the agent's final export reached the server before it stopped.
    assert not list((tmp_path / "data" / "spool").glob("*.otlp"))


def test_up_and_server_on_a_busy_port_fail_in_one_line_before_writing_anything(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        for cmd in ("up", "server"):
            data = tmp_path / cmd
            res = subprocess.run([sys.executable, "-m", "infersight.cli", cmd, "--data-dir", str(data),
                                  "--listen", f"127.0.0.1:{port}"], capture_output=True, text=True, timeout=60)
            assert res.returncode == 2, res.stderr
            assert res.stderr.strip() == (f"error: server.listen: 127.0.0.1:{port} is already in use (another "
                                          "infersight server or `infersight up`?): stop it, or pick another address "
                                          "with --listen")
            assert "infersight is up" not in res.stdout
            assert not data.exists()


def test_up_keeps_an_edited_agent_config(tmp_path):
    path = tmp_path / "agent.yaml"
    body = yaml.safe_dump(agent_config(tmp_path, "127.0.0.1:4318", 10.0))
    assert write_generated(path, body) is True
    assert yaml.safe_load(path.read_text()) == yaml.safe_load(body)
    assert write_generated(path, body.replace("10.0", "5.0")) is True  # unedited: written again
    edited = path.read_text().replace("host", "nvml")
    path.write_text(edited)
    assert write_generated(path, body) is False
    assert path.read_text() == edited
    token = agent_config(tmp_path, "0.0.0.0:4318", 1.0, token="t")["agent"]["exporter"]
    assert token["endpoint"] == "http://127.0.0.1:4318" and token["headers"] == {"Authorization": "Bearer t"}
