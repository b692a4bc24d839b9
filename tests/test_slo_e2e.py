"""End to end with real processes: OTLP → `infersight server --slo` (gateway, rollup views, SLO engine)
→ webhook; the CLI against the running server (`slo status`, `silence`), SIGHUP reload, then
`slo status --data-dir --at` on the stopped server's store, and `notify test`."""
from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

from support.net import free_port
from support.slo import slo_doc

ROOT = Path(__file__).parent.parent


def _otlp_requests(t_ns: int, good: int, bad: int) -> bytes:
    from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
    from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
    from opentelemetry.proto.metrics.v1.metrics_pb2 import AGGREGATION_TEMPORALITY_DELTA, NumberDataPoint

    def kv(k, v):
        return KeyValue(key=k, value=AnyValue(string_value=v))

    req = ExportMetricsServiceRequest()
    rm = req.resource_metrics.add()
    rm.resource.attributes.extend([kv("service.name", "infersight-agent"), kv("cloud.provider", "aws"),
                                   kv("cloud.region", "us-east-1"), kv("host.name", "node-1")])
    m = rm.scope_metrics.add().metrics.add()
    m.name, m.unit = "infersight.inference.requests", "{request}"
    m.sum.aggregation_temporality = AGGREGATION_TEMPORALITY_DELTA
    m.sum.is_monotonic = True
    for outcome, n in (("good", good), ("bad", bad)):
        p = NumberDataPoint(start_time_unix_nano=t_ns - 10**10, time_unix_nano=t_ns, as_double=float(n))
        p.attributes.extend([kv("gen_ai.request.model", "llama"), kv("infersight.server.kind", "vllm"),
                             kv("infersight.request.outcome", outcome)])
        m.sum.data_points.append(p)
    return req.SerializeToString()


def _cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "infersight.cli", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT)


def _get(url: str):
    with urllib.request.urlopen(url, timeout=10) as r:
        return json.loads(r.read())


async def _until(pred, timeout: float = 30.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            got = await asyncio.to_thread(pred)
        except OSError:
            got = None
        if got:
            return got
        await asyncio.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


async def test_server_slo_end_to_end(tmp_path, hook, capsys):
    from infersight.cli.main import main

    async def cli(*args: str) -> subprocess.CompletedProcess:
        """In-process for the commands that only talk HTTP (no second chDB path in this process)."""
        capsys.readouterr()
        code = await asyncio.to_thread(main, list(args))
        out = capsys.readouterr()
        return subprocess.CompletedProcess(args, code, out.out, out.err)

    pytest.importorskip("chdb")
    specs = tmp_path / "slos"
    specs.mkdir()
    (specs / "avail.yaml").write_text(yaml.safe_dump(slo_doc(window={"rolling": "7d"}, group_by=["cloud.region"])))
    cfg = tmp_path / "infersight.yaml"
    cfg.write_text(yaml.safe_dump({"slo": {
        "interval_seconds": 1,
        "receivers": [{"name": "oncall", "type": "webhook", "url": hook.url, "secret": "k"}],
        "route": {"group_wait_seconds": 0, "group_interval_seconds": 1},
    }}))
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    data = tmp_path / "data"
    log = (tmp_path / "server.log").open("w")
    proc = subprocess.Popen([sys.executable, "-m", "infersight.cli", "server", "--config", str(cfg),
                             "--data-dir", str(data), "--listen", f"127.0.0.1:{port}", "--slo", str(specs)],
                            cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    try:
        await _until(lambda: _get(base + "/api/v1/slos"), what="server start")
        now = time.time()
        body = _otlp_requests(int(now * 1e9), good=0, bad=1000)
        req = urllib.request.Request(base + "/v1/metrics", data=body, method="POST",
                                     headers={"Content-Type": "application/x-protobuf"})
        with urllib.request.urlopen(req, timeout=10) as r:
            assert r.status == 200

        def firing():
            return [a for a in _get(base + "/api/v1/alerts")["alerts"] if a["state"] == "firing"]

        alerts = await _until(firing, what="a firing alert")
        assert {a["labels"]["cloud_region"] for a in alerts} == {"us-east-1"}
        await _until(lambda: hook.bodies, what="the webhook")
        assert hook.bodies[0]["status"] == "firing" and hook.posts[0][1]["X-Infersight-Signature"].startswith(
            "sha256=")

        st = await cli("slo", "status", "--server", base, "--format", "json")
        assert st.returncode == 0, st.stderr
        inst = json.loads(st.stdout)["instances"][0]
        assert inst["slo"] == "avail" and inst["group"] == {"cloud.region": "us-east-1"}
        assert inst["state"] == "exhausted" and inst["sli"] == 0.0
        table = await cli("slo", "status", "--server", base)
        assert "avail" in table.stdout and "page-fast" in table.stdout and "firing" in table.stdout

        add = await cli("silence", "add", "slo=avail", "tier=~page-.*", "--duration", "2h",
                                      "--comment", "deploy", "--server", base)
        assert add.returncode == 0, add.stderr
        sid = add.stdout.strip()
        listed = await cli("silence", "list", "--server", base)
        assert sid in listed.stdout and "active" in listed.stdout and "tier=~page-.*" in listed.stdout
        muted = {a["labels"]["tier"]: a["silenced"] for a in _get(base + "/api/v1/alerts")["alerts"]}
        assert muted["page-fast"] and not muted.get("budget-exhausted", False)
        exp = await cli("silence", "expire", sid, "--server", base)
        assert exp.returncode == 0

        # The alert log through the server: the page went to the webhook and its delivery is recorded.
        async def logged() -> list[dict]:
            h = await cli("slo", "history", "--server", base, "--name", "avail", "--format", "json")
            assert h.returncode == 0, h.stderr
            return [e for e in json.loads(h.stdout)["entries"] if e["tier"] == "page-fast" and e["event"] == "firing"
                    and [(d["receiver"], d["status"]) for d in e["deliveries"]] == [("oncall", "sent")]]
        deadline = time.monotonic() + 20
        while not await logged():
            assert time.monotonic() < deadline, "page-fast delivery not in the alert log"
            await asyncio.sleep(0.2)
        bad = await cli("slo", "history", "--server", base, "--limit", "0")
        assert bad.returncode == 2 and "limit: a whole number from 1 to" in bad.stderr

        # SIGHUP: a new spec appears, the alert state stays.
        (specs / "ttft.yaml").write_text(yaml.safe_dump(slo_doc(
            name="ttft", sli={"latency": {"kind": "ttft", "threshold_seconds": 0.5}})))
        os.kill(proc.pid, signal.SIGHUP)
        await _until(lambda: len(_get(base + "/api/v1/slos")["slos"]) == 2, what="reload")
        assert {a["fingerprint"] for a in firing()} >= {a["fingerprint"] for a in alerts}
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
        log.close()
    assert proc.returncode == 0, (tmp_path / "server.log").read_text()[-3000:]

    # Offline: the stopped server's store, evaluated at a past moment and now.
    st = await asyncio.to_thread(_cli, "slo", "status", "--data-dir", str(data), "--slo", str(specs / "avail.yaml"),
                                 "--at", str(int(now) - 3600), "--format", "json")
    assert st.returncode == 0, st.stderr
    # Nothing had happened an hour before: the grouped SLO shows as one "no data" instance.
    assert [(i["slo"], i["group"], i["state"]) for i in json.loads(st.stdout)["instances"]] == [
        ("avail", {}, "no_data")]
    st = await asyncio.to_thread(_cli, "slo", "status", "--data-dir", str(data), "--slo", str(specs / "avail.yaml"),
                                 "--at", time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now + 60)), "--format",
                                 "json")
    assert json.loads(st.stdout)["instances"][0]["state"] == "exhausted"
    # The alert log of the stopped server, read from its store.
    hist = await asyncio.to_thread(_cli, "slo", "history", "--data-dir", str(data), "--name", "avail")
    assert hist.returncode == 0, hist.stderr
    assert any("firing" in line and "page-fast" in line and "oncall:sent" in line
               for line in hist.stdout.splitlines()), hist.stdout
    # Offline silences go through the engine's rules on the stopped server's state store.
    add = await asyncio.to_thread(_cli, "silence", "add", "slo=avail", "--duration", "1h", "--data-dir", str(data))
    assert add.returncode == 0, add.stderr
    sid = add.stdout.strip()
    assert (await asyncio.to_thread(_cli, "silence", "expire", sid, "--data-dir", str(data))).returncode == 0
    listed = await asyncio.to_thread(_cli, "silence", "list", "--data-dir", str(data))
    assert any(line.startswith(f"{sid}  expired") for line in listed.stdout.splitlines()), listed.stdout
    missing = await asyncio.to_thread(_cli, "silence", "expire", "nope", "--data-dir", str(data))
    assert missing.returncode == 2 and "no silence nope" in missing.stderr

    sent = len(hook.posts)
    nt = await cli("notify", "test", "oncall", "--config", str(cfg))
    assert nt.returncode == 0, nt.stderr
    assert len(hook.posts) == sent + 1 and hook.bodies[-1]["alerts"][0]["labels"]["alertname"] == "InfersightTestAlert"
    assert (await cli("notify", "test", "nobody", "--config", str(cfg))).returncode == 2
