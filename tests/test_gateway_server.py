"""`infersight server` as a real subprocess with its own --data-dir."""
from __future__ import annotations

import gzip
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request

from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest

from support.net import free_port


def start(data_dir, port: int, *extra: str) -> subprocess.Popen:
    proc = subprocess.Popen(
        [sys.executable, "-m", "infersight.cli", "server", "--data-dir", str(data_dir),
         "--listen", f"127.0.0.1:{port}", *extra],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"})
    line = proc.stdout.readline()
    assert "OTLP/HTTP on http://127.0.0.1" in line, (line, proc.stderr.read() if proc.poll() else "")
    assert f"query API on http://127.0.0.1:{port}/api/v1/query" in line
    return proc


def post(url: str, body: bytes, headers: dict[str, str]) -> int:
    req = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status
    except urllib.error.HTTPError as err:
        return err.code


def query(base: str, sql: str) -> list[dict]:
    req = urllib.request.Request(f"{base}/api/v1/query", data=json.dumps({"sql": sql}).encode(),
                                 headers={"Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(req, timeout=30) as resp:
        return json.load(resp)["rows"]


def request(n: int) -> bytes:
    req = ExportMetricsServiceRequest()
    rm = req.resource_metrics.add()
    rm.resource.attributes.add(key="service.name").value.string_value = "proc-test"
    m = rm.scope_metrics.add().metrics.add(name="up")
    for i in range(n):
        dp = m.sum.data_points.add(time_unix_nano=1_700_000_000_000_000_000 + i, as_double=i)
        dp.attributes.add(key="i").value.int_value = i
    m.sum.is_monotonic = True
    m.sum.aggregation_temporality = 2
    return gzip.compress(req.SerializeToString())


def stop(proc: subprocess.Popen) -> int:
    proc.send_signal(signal.SIGTERM)
    return proc.wait(timeout=30)


def test_server_subprocess_ingests_and_keeps_keys_across_restart(tmp_path):
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    headers = {"Content-Type": "application/x-protobuf", "Content-Encoding": "gzip",
               "Idempotency-Key": "spool-batch-7"}
    proc = start(tmp_path / "data", port)
    try:
        with urllib.request.urlopen(f"{base}/readyz", timeout=10) as resp:
            assert resp.status == 200
        assert post(f"{base}/v1/metrics", request(5), headers) == 200
        rows = query(base, "SELECT count() AS n, sum(Value) AS s, any(ServiceName) AS svc "
                           "FROM otel.otel_metrics_sum")
        assert rows == [{"n": 5, "s": 10, "svc": "proc-test"}]
    finally:
        assert stop(proc) == 0
    # The same store after a restart: the re-sent batch is recognised, not written again.
    proc = start(tmp_path / "data", port)
    try:
        assert post(f"{base}/v1/metrics", request(5), headers) == 200
        assert query(base, "SELECT count() AS n FROM otel.otel_metrics_sum") == [{"n": 5}]
    finally:
        assert stop(proc) == 0


def test_sigterm_flushes_queued_rows(tmp_path):
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    cfg = tmp_path / "server.yaml"
    cfg.write_text("server:\n  flush_interval_seconds: 30\n")
    proc = start(tmp_path / "data", port, "--config", str(cfg))
    try:
        import threading

        status: list[int] = []
        t = threading.Thread(target=lambda: status.append(post(
            f"{base}/v1/metrics", request(3), {"Content-Type": "application/x-protobuf",
                                               "Content-Encoding": "gzip"})))
        t.start()
        time.sleep(1.0)  # the request waits for a flush 30 s away
        assert not status
    finally:
        assert stop(proc) == 0
    t.join(10)
    assert status == [200]
    proc = start(tmp_path / "data", port)
    try:
        assert query(base, "SELECT count() AS n FROM otel.otel_metrics_sum") == [{"n": 3}]
    finally:
        assert stop(proc) == 0


def test_non_loopback_listen_requires_a_token(tmp_path):
    out = subprocess.run([sys.executable, "-m", "infersight.cli", "server", "--data-dir", str(tmp_path),
                          "--listen", f"0.0.0.0:{free_port()}"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 2
    assert "server.auth_token: required when listening on a non-loopback address" in out.stderr


def test_scoped_tokens_off_loopback_and_an_unreadable_token_file(tmp_path):
    port = free_port()
    agents, sre = tmp_path / "agents.token", tmp_path / "sre.token"
    cfg = tmp_path / "server.yaml"
    cfg.write_text(json.dumps({"server": {"tokens": [
        {"name": "agents", "scopes": ["ingest"], "token_file": str(agents)},
        {"name": "sre", "scopes": ["read"], "token_file": str(sre)}]}}))
    cmd = [sys.executable, "-m", "infersight.cli", "server", "--config", str(cfg), "--data-dir", str(tmp_path / "d"),
           "--listen", f"0.0.0.0:{port}"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert out.returncode == 2
    assert f"server.tokens.0.token_file: {agents}: No such file or directory" in out.stderr
    agents.write_text("agent-secret\n")
    sre.write_text("sre-secret\n")
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        assert "OTLP/HTTP on" in proc.stdout.readline()
        base = f"http://127.0.0.1:{port}"
        pb = {"Content-Type": "application/x-protobuf", "Content-Encoding": "gzip"}
        assert post(f"{base}/v1/metrics", request(2), {**pb, "Authorization": "Bearer agent-secret"}) == 200
        ask = json.dumps({"sql": "SELECT count() AS n FROM otel.otel_metrics_sum"}).encode()
        js = {"Content-Type": "application/json"}
        assert post(f"{base}/api/v1/query", ask, {**js, "Authorization": "Bearer agent-secret"}) == 403
        assert post(f"{base}/api/v1/query", ask, {**js, "Authorization": "Bearer sre-secret"}) == 200
        assert post(f"{base}/v1/metrics", request(2), {**pb, "Authorization": "Bearer sre-secret"}) == 403
    finally:
        assert stop(proc) == 0
