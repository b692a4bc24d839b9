"""Ingest throughput: OTLP/HTTP protobuf metric requests → `infersight server` → chDB, end to end.

Realistic requests: 1,000 gauge/sum points each (10 metrics x 100 series), 8 attributes per point,
a resource per host. The server runs as a subprocess pinned to one core; requests are posted with
enough concurrency to fill flushes, and every point is acknowledged only once stored. The ceiling is
the same rows (built by the gateway's own code, untimed) inserted straight into chDB as Arrow, in
10k-row inserts, on the same core, in the same run.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

METRICS = ("hw.gpu.utilization", "hw.gpu.memory.usage", "hw.gpu.power", "hw.gpu.temperature",
           "gen_ai.server.requests.running", "gen_ai.server.requests.waiting",
           "gen_ai.server.kv_cache.usage", "gen_ai.client.token.usage", "process.cpu.utilization",
           "process.memory.usage")
MODELS = ("llama-3.1-70b", "mixtral-8x7b", "qwen2.5-32b", "gpt-oss-120b")
TENANTS = ("acme", "globex", "initech", "umbrella", "hooli")


def make_request(seq: int, hosts: int = 50) -> bytes:
    host = seq % hosts
    t = 1_767_225_600_000_000_000 + seq * 10_000_000_000
    req = ExportMetricsServiceRequest()
    rm = req.resource_metrics.add()
    for k, v in (("service.name", "infersight-agent"), ("host.name", f"gpu-node-{host:03d}"),
                 ("host.id", f"i-{host:016x}"), ("cloud.provider", "aws"), ("cloud.region", "us-east-1"),
                 ("cloud.availability_zone", "us-east-1a"), ("host.type", "p5.48xlarge")):
        rm.resource.attributes.add(key=k).value.string_value = v
    sm = rm.scope_metrics.add()
    sm.scope.name, sm.scope.version = "infersight", "0.1.0"
    for mi, name in enumerate(METRICS):
        m = sm.metrics.add(name=name, unit="1")
        data = m.sum if mi % 2 else m.gauge
        if mi % 2:
            data.aggregation_temporality, data.is_monotonic = 2, False
        for s in range(100):
            dp = data.data_points.add(start_time_unix_nano=t - 60_000_000_000, time_unix_nano=t,
                                      as_double=(seq * 7 + s * 13 + mi) % 1000 / 10)
            for k, v in (("hw.id", f"gpu-{s % 8}"), ("hw.type", "gpu"),
                         ("gen_ai.request.model", MODELS[s % 4]), ("server.kind", "vllm"),
                         ("tenant", TENANTS[s % 5]), ("engine", str(s % 2)),
                         ("hw.gpu.mig", "none"), ("pipeline.stage", f"stage-{s // 8 % 4}")):
                dp.attributes.add(key=k).value.string_value = v
    return req.SerializeToString()


def wait_ready(base: str, proc: subprocess.Popen) -> None:
    import urllib.request

    for _ in range(600):
        if proc.poll() is not None:
            raise SystemExit(f"server exited: {proc.stderr.read()}")
        try:
            with urllib.request.urlopen(f"{base}/readyz", timeout=1) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise SystemExit("server did not become ready")


async def post_all(base: str, bodies: list[bytes], concurrency: int) -> float:
    import aiohttp

    queue = list(enumerate(bodies))
    queue.reverse()
    async with aiohttp.ClientSession() as session:
        async def worker() -> None:
            while queue:
                i, body = queue.pop()
                async with session.post(f"{base}/v1/metrics", data=body, headers={
                        "Content-Type": "application/x-protobuf", "Idempotency-Key": f"bench-{i}"}) as r:
                    if r.status != 200:
                        raise SystemExit(f"request {i}: HTTP {r.status}: {await r.text()}")
                    await r.read()

        # Warm-up request (connection, first flush), not timed.
        queue_warm = bodies[:1]
        async with session.post(f"{base}/v1/metrics", data=queue_warm[0], headers={
                "Content-Type": "application/x-protobuf", "Idempotency-Key": "bench-warm"}) as r:
            assert r.status == 200, await r.text()
        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return time.perf_counter() - start


def ceiling(bodies: list[bytes], core: int | None, flush_rows: int) -> tuple[float, float, int]:
    """The same rows inserted straight into chDB as Arrow (10k-row inserts)."""
    import pyarrow as pa

    from infersight.gateway import otlp, rows
    from infersight.server.tables import all_ddl
    from infersight.storage.embedded import EmbeddedStorage
    from infersight.storage.schema import SchemaOptions, ensure_schema

    if core is not None:  # before chDB and Arrow start their thread pools, which inherit it
        os.sched_setaffinity(0, {core})
    sets = rows.AttrSets()
    per_table: dict[str, list[rows.Part]] = {}
    for body in bodies:
        res = rows.metrics_rows(otlp.decode(otlp.SIGNALS["metrics"], body, otlp.PROTOBUF), sets)
        for name, part in res.parts.items():
            per_table.setdefault(name, []).append(part)
    batches: list[tuple[str, pa.Table]] = []
    for name, parts in per_table.items():
        step = max(1, flush_rows // parts[0].num_rows)
        for i in range(0, len(parts), step):
            batches.append((name, rows.to_arrow(parts[i:i + step])))
    data_dir = tempfile.mkdtemp(prefix="infersight-bench-ceiling-")
    try:
        store = EmbeddedStorage(data_dir, "otel")
        ensure_schema(store, SchemaOptions("otel"), all_ddl())
        me = psutil.Process()
        cpu0 = cpu_seconds(me)
        start = time.perf_counter()
        for i, (name, table) in enumerate(batches):
            store.insert_arrow(name, table, f"ceiling-{i}")
        elapsed = time.perf_counter() - start
        cpu = cpu_seconds(me) - cpu0
        n = sum(int(store.query(f"SELECT count() AS n FROM otel.{t}")[0]["n"]) for t in per_table)
        store.close()
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)
    return elapsed, cpu, n


def cpu_seconds(p: psutil.Process) -> float:
    t = p.cpu_times()
    return t.user + t.system


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--requests", type=int, default=300)
    ap.add_argument("--concurrency", type=int, default=64)
    ap.add_argument("--port", type=int, default=0)
    args = ap.parse_args()

    bodies = [make_request(i) for i in range(args.requests)]
    points = args.requests * 1000
    cores = sorted(os.sched_getaffinity(0))
    server_core = cores[0] if len(cores) > 1 else None
    client_cores = set(cores[1:]) if len(cores) > 1 else set(cores)

    import socket

    port = args.port
    if not port:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
    base = f"http://127.0.0.1:{port}"
    data_dir = tempfile.mkdtemp(prefix="infersight-bench-ingest-")
    cmd = [sys.executable, "-m", "infersight.cli", "--log-level", "WARNING", "server",
           "--data-dir", data_dir, "--listen", f"127.0.0.1:{port}"]
    if server_core is not None and shutil.which("taskset"):
        cmd = ["taskset", "-c", str(server_core)] + cmd
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
    try:
        wait_ready(base, proc)
        os.sched_setaffinity(0, client_cores)
        server = psutil.Process(proc.pid)
        for child in server.children(recursive=True):  # taskset execs, but be safe
            server = child
        cpu0 = cpu_seconds(server)
        elapsed = asyncio.run(post_all(base, bodies, args.concurrency))
        server_cpu = cpu_seconds(server) - cpu0
        import json
        import urllib.request

        req = urllib.request.Request(f"{base}/api/v1/query", method="POST", data=json.dumps({
            "sql": "SELECT (SELECT count() FROM otel.otel_metrics_gauge) + "
                   "(SELECT count() FROM otel.otel_metrics_sum) AS n"}).encode(),
            headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=60) as r:
            stored = int(json.load(r)["rows"][0]["n"])
    finally:
        proc.terminate()
        proc.wait(timeout=60)
        shutil.rmtree(data_dir, ignore_errors=True)
    expected = points + 1000  # plus the warm-up request
    if stored != expected:
        print(f"error: stored {stored} points, expected {expected}", file=sys.stderr)
        return 1
    os.sched_setaffinity(0, set(cores))
    ceil_s, ceil_cpu, ceil_n = ceiling(bodies, server_core, 10_000)
    assert ceil_n == points, (ceil_n, points)
    e2e, top = points / elapsed, points / ceil_s
    e2e_cpu, top_cpu = points / server_cpu, points / ceil_cpu
    print(f"ingest: {args.requests} OTLP/HTTP protobuf requests x 1000 points, 8 attributes/point, "
          f"server on {'core ' + str(server_core) if server_core is not None else 'shared cores'}")
    print(f"  end to end (HTTP → gateway → chDB, acked after write): {e2e:10,.0f} points/s wall "
          f"({elapsed:.2f} s), {e2e_cpu:10,.0f} points per CPU-second")
    print(f"  ceiling (same rows as Arrow straight into chDB):       {top:10,.0f} points/s wall "
          f"({ceil_s:.2f} s), {top_cpu:10,.0f} points per CPU-second")
    print(f"  ratio end to end / ceiling:  {e2e / top:.1%} wall, {e2e_cpu / top_cpu:.1%} CPU")
    return 0


if __name__ == "__main__":
    sys.exit(main())
