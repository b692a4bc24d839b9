"""Ingest throughput: OTLP/HTTP protobuf metric requests → `infersight server` → chDB, end to end.

Realistic requests: 1,000 gauge/sum points each (10 metrics x 100 series), 8 attributes per point,
a resource per host. The server runs as a subprocess pinned to one core, then to two; requests are
posted with enough concurrency to fill flushes (a fleet's agents), and every point is acknowledged
only once stored; each request's acknowledgement latency is recorded. The ceiling is the same rows
(built by the gateway's own code, untimed) inserted straight into chDB as Arrow on one core, in the
same run, at several insert sizes: 10k rows (the old fixed flush size) and the best one.

The machine may be shared: every rate is given per wall second and per CPU-second of the process
(user + system, all threads, and any child processes), and compared with the ceiling of the same run.
`--compare-src DIR` adds 1- and 2-core runs of another source tree (e.g. the previous commit,
`git archive HEAD src | tar -x -C DIR`), so a change's cost is measured in the same run.
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
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


async def warm_up(base: str, body: bytes, tag: str) -> None:
    import aiohttp

    async with aiohttp.ClientSession() as session, session.post(f"{base}/v1/metrics", data=body, headers={
            "Content-Type": "application/x-protobuf", "Idempotency-Key": f"{tag}-warm"}) as r:
        if r.status != 200:
            raise SystemExit(f"warm-up: HTTP {r.status}: {await r.text()}")


async def post_all(base: str, bodies: list[bytes], concurrency: int, tag: str) -> tuple[float, list[float]]:
    """Post every body; the elapsed time and each request's latency."""
    import aiohttp

    queue = list(enumerate(bodies))
    queue.reverse()
    latencies: list[float] = []
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as session:
        async def post(i: int | str, body: bytes) -> None:
            t0 = time.perf_counter()
            async with session.post(f"{base}/v1/metrics", data=body, headers={
                    "Content-Type": "application/x-protobuf", "Idempotency-Key": f"{tag}-{i}"}) as r:
                if r.status != 200:
                    raise SystemExit(f"request {i}: HTTP {r.status}: {await r.text()}")
                await r.read()
            latencies.append(time.perf_counter() - t0)

        async def worker() -> None:
            while queue:
                await post(*queue.pop())

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return time.perf_counter() - start, latencies


def percentile(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))] if s else float("nan")


def _metric(text: str, name: str) -> float:
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name + " ")
               or line.startswith(name + "{"))


def end_to_end(bodies: list[bytes], server_cores: set[int] | None, client_cores: set[int], concurrency: int,
               server_yaml: str = "", src: Path = ROOT / "src") -> dict[str, float]:
    """One server on `server_cores` (None: unpinned); every request posted and acknowledged; counts checked."""
    import json
    import socket
    import urllib.request

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    base = f"http://127.0.0.1:{port}"
    data_dir = tempfile.mkdtemp(prefix="infersight-bench-ingest-")
    cfg = Path(data_dir) / "server.yaml"
    cfg.write_text("server:\n  grpc_listen: null\n  clickhouse_listen: null\n" + server_yaml)
    cmd = [sys.executable, "-m", "infersight.cli", "--log-level", "WARNING", "server", "--config", str(cfg),
           "--data-dir", str(Path(data_dir) / "data"), "--listen", f"127.0.0.1:{port}"]
    if server_cores is not None and shutil.which("taskset"):
        cmd = ["taskset", "-c", ",".join(map(str, sorted(server_cores)))] + cmd
    env = {**os.environ, "PYTHONPATH": str(src)}
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
    mine = os.sched_getaffinity(0)
    try:
        wait_ready(base, proc)
        os.sched_setaffinity(0, client_cores)
        server = psutil.Process(proc.pid)
        asyncio.run(warm_up(base, bodies[0], f"bench-{port}"))  # untimed
        cpu0 = cpu_seconds(server, children=True)
        elapsed, latencies = asyncio.run(post_all(base, bodies, concurrency, f"bench-{port}"))
        server_cpu = cpu_seconds(server, children=True) - cpu0
        settled_cpu = settle(server, children=True) - cpu0
        rss = server.memory_info().rss + sum(c.memory_info().rss for c in server.children(recursive=True))
        with urllib.request.urlopen(f"{base}/metrics", timeout=30) as r:
            metrics = r.read().decode()
        req = urllib.request.Request(f"{base}/api/v1/query", method="POST", data=json.dumps({
            "sql": "SELECT (SELECT count() FROM otel.otel_metrics_gauge) + "
                   "(SELECT count() FROM otel.otel_metrics_sum) AS n"}).encode(),
            headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=60) as r:
            stored = int(json.load(r)["rows"][0]["n"])
    finally:
        os.sched_setaffinity(0, mine)
        proc.terminate()
        proc.wait(timeout=60)
        shutil.rmtree(data_dir, ignore_errors=True)
    points = len(bodies) * 1000
    if stored != points + 1000:  # plus the warm-up request
        raise SystemExit(f"error: stored {stored} points, expected {points + 1000}")
    flushes = _metric(metrics, "infersight_server_flush_rows_count")
    flush_seconds = _metric(metrics, "infersight_server_flush_duration_seconds_sum")
    return {"elapsed": elapsed, "cpu": server_cpu, "rate": points / elapsed, "cpu_rate": points / server_cpu,
            "settled_rate": points / settled_cpu,
            "p50": percentile(latencies, 0.5), "p99": percentile(latencies, 0.99), "max": max(latencies),
            "rows_per_flush": _metric(metrics, "infersight_server_flush_rows_sum") / max(flushes, 1),
            "seconds_per_flush": flush_seconds / max(flushes, 1), "rss": rss}


def built_tables(bodies: list[bytes]) -> dict[str, object]:
    """The rows of `bodies` per table, built by the gateway's own code (untimed)."""
    from infersight.gateway import otlp, rows

    sets = rows.AttrSets()
    per_table: dict[str, list[rows.Part]] = {}
    for body in bodies:
        res = rows.metrics_rows(otlp.decode(otlp.SIGNALS["metrics"], body, otlp.PROTOBUF), sets)
        for name, part in res.parts.items():
            per_table.setdefault(name, []).append(part)
    return {name: rows.to_arrow(parts) for name, parts in per_table.items()}


def settle(p: psutil.Process, children: bool = False, idle_cpu: float = 0.01, timeout: float = 180.0) -> float:
    """`p`'s CPU seconds once it is idle again (under `idle_cpu` CPU-seconds in each of two 0.5 s windows):
    the background merges an ingest caused are then done, and counted."""
    deadline = time.monotonic() + timeout
    quiet, last = 0, cpu_seconds(p, children)
    while quiet < 2 and time.monotonic() < deadline:
        time.sleep(0.5)
        now = cpu_seconds(p, children)
        quiet, last = (quiet + 1 if now - last < idle_cpu else 0), now
    if quiet < 2:
        print(f"warning: pid {p.pid} still busy after {timeout:.0f} s; its merge-inclusive rate counts only "
              "the CPU until then (too high a rate)", file=sys.stderr)
    return last


def ceiling(tables: dict[str, object], batch_rows: int) -> tuple[float, float, float, int]:
    """The same rows inserted straight into chDB as Arrow, `batch_rows` a insert (this process): wall and
    CPU seconds of the inserts, and CPU seconds once the merges they caused are done."""
    from infersight.server.tables import all_ddl
    from infersight.storage.embedded import EmbeddedStorage
    from infersight.storage.schema import SchemaOptions, ensure_schema

    data_dir = tempfile.mkdtemp(prefix="infersight-bench-ceiling-")
    try:
        store = EmbeddedStorage(data_dir, "otel")
        ensure_schema(store, SchemaOptions("otel"), all_ddl())
        me = psutil.Process()
        cpu0 = cpu_seconds(me)
        start = time.perf_counter()
        i = 0
        for name, table in tables.items():
            for off in range(0, table.num_rows, batch_rows):  # type: ignore[attr-defined]
                store.insert_arrow(name, table.slice(off, batch_rows), f"ceiling-{i}")  # type: ignore[attr-defined]
                i += 1
        elapsed = time.perf_counter() - start
        cpu = cpu_seconds(me) - cpu0
        settled = settle(me) - cpu0
        n = sum(int(store.query(f"SELECT count() AS n FROM otel.{t}")[0]["n"]) for t in tables)
        store.close()
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)
    return elapsed, cpu, settled, n


def cpu_seconds(p: psutil.Process, children: bool = False) -> float:
    """User + system CPU of `p` and its threads (and of exited children it waited for), plus its live
    children's when `children`."""
    t = p.cpu_times()
    total = t.user + t.system
    if children:
        for c in p.children(recursive=True):
            with contextlib.suppress(psutil.NoSuchProcess):
                ct = c.cpu_times()
                total += ct.user + ct.system
    return total


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--requests", type=int, default=500)
    ap.add_argument("--concurrency", type=int, default=128, help="requests in flight (agents sending at once)")
    ap.add_argument("--batch-rows", default="10000,50000,100000,200000",
                    help="insert sizes of the raw chDB ceiling, comma-separated (10000 is the old flush size)")
    ap.add_argument("--old-flush", action="store_true",
                    help="also run the server with the old fixed 10k-row flushes (flush_max_rows: 10000)")
    ap.add_argument("--compare-src", type=Path, default=None,
                    help="also run the server from this source tree (its src/), e.g. the previous commit")
    args = ap.parse_args()

    bodies = [make_request(i) for i in range(args.requests)]
    points = args.requests * 1000
    cores = sorted(os.sched_getaffinity(0))
    one = {cores[0]}
    two = set(cores[:2]) if len(cores) > 1 else None
    rest = set(cores[2:]) or set(cores[1:]) or set(cores)  # the client: beside the server where it can be
    runs: list[tuple[str, dict[str, float]]] = []
    runs.append(("1 core", end_to_end(bodies, one, set(cores[1:]) or set(cores), args.concurrency)))
    if args.old_flush:
        runs.append(("1 core, fixed 10k flushes", end_to_end(
            bodies, one, set(cores[1:]) or set(cores), args.concurrency, "  flush_max_rows: 10000\n")))
    if args.compare_src is not None:
        runs.append((f"1 core, {args.compare_src.name}", end_to_end(
            bodies, one, set(cores[1:]) or set(cores), args.concurrency, src=args.compare_src / "src")))
    if two is not None:
        runs.append(("2 cores", end_to_end(bodies, two, rest, args.concurrency)))
        if args.compare_src is not None:
            runs.append((f"2 cores, {args.compare_src.name}", end_to_end(
                bodies, two, rest, args.concurrency, src=args.compare_src / "src")))

    tables = built_tables(bodies)
    # The store's limit for the server's own inserts: the 1-core run's flush size per table. The listed sizes
    # make few parts (under the merge fan-in at these row counts), so they cause hardly any merges; this one
    # causes the merges the server's flushes did, and its merge-inclusive rate is the fair yardstick.
    matched = max(1_000, round(runs[0][1]["rows_per_flush"] / len(tables), -3))
    sizes = sorted({*(int(x) for x in args.batch_rows.split(",")), int(matched)})
    mine = os.sched_getaffinity(0)
    ceilings: dict[int, tuple[float, float, float]] = {}
    pid = os.fork()
    if pid == 0:  # chDB and Arrow start their thread pools pinned to one core, in a child of their own
        os.sched_setaffinity(0, one)
        out = []
        for size in sizes:
            el, cpu, settled, n = ceiling(tables, size)
            assert n == points, (n, points)
            out.append(f"{size} {el} {cpu} {settled}")
        Path(f"/tmp/infersight-bench-ceiling-{os.getpid()}").write_text("\n".join(out))
        os._exit(0)
    _, status = os.waitpid(pid, 0)
    os.sched_setaffinity(0, mine)
    result = Path(f"/tmp/infersight-bench-ceiling-{pid}")
    if status != 0 or not result.exists():
        print("error: ceiling run failed", file=sys.stderr)
        return 1
    for line in result.read_text().splitlines():
        size, el, cpu, settled = line.split()
        ceilings[int(size)] = (float(el), float(cpu), float(settled))
    result.unlink()
    best = max(ceilings, key=lambda k: points / ceilings[k][1])

    print(f"ingest: {args.requests} OTLP/HTTP protobuf requests x 1000 points, 8 attributes/point, "
          f"{args.concurrency} in flight; {len(cores)} cores here (load {os.getloadavg()[0]:.1f})")
    for size, (el, cpu, settled) in sorted(ceilings.items()):
        mark = ("  <- best" if size == best else "") + ("  <- the server's flush size" if size == matched else "")
        print(f"  ceiling, raw chDB Arrow inserts of {size:>7,} rows, 1 core: {points / el:10,.0f} points/s wall, "
              f"{points / cpu:10,.0f} per CPU-second{mark}; {points / settled:10,.0f} per CPU-second with its merges")
    b_wall, b_cpu = points / ceilings[best][0], points / ceilings[best][1]
    b_settled = max(points / c[2] for c in ceilings.values())
    small = 10_000 if 10_000 in ceilings else min(ceilings)
    k_wall, k_cpu = points / ceilings[small][0], points / ceilings[small][1]
    m_settled = points / ceilings[matched][2]
    base = runs[0][1]
    for label, r in runs:
        print(f"  end to end, server on {label:26}: {r['rate']:10,.0f} points/s wall ({r['elapsed']:.2f} s), "
              f"{r['cpu_rate']:10,.0f} per CPU-second; ack p50 {r['p50'] * 1000:.0f} ms, p99 "
              f"{r['p99'] * 1000:.0f} ms, max {r['max'] * 1000:.0f} ms; {r['rows_per_flush']:,.0f} rows and "
              f"{r['seconds_per_flush'] * 1000:.0f} ms per flush; RSS {r['rss'] / 2**20:.0f} MiB")
        print(f"    ratio to the best raw insert: {r['rate'] / b_wall:.1%} wall, {r['cpu_rate'] / b_cpu:.1%} CPU; "
              f"to the {small:,}-row ceiling: {r['rate'] / k_wall:.1%} wall, {r['cpu_rate'] / k_cpu:.1%} CPU"
              + (f"; {r['rate'] / base['rate']:.2f}x the 1-core wall rate, {r['cpu_rate'] / base['cpu_rate']:.2f}x "
                 "its rate per CPU-second" if r is not base else ""))
        print(f"    with the merges it caused (CPU until idle): {r['settled_rate']:,.0f} per CPU-second, "
              f"{r['settled_rate'] / b_settled:.1%} of the best raw insert with its merges ({b_settled:,.0f}), "
              f"{r['settled_rate'] / m_settled:.1%} of raw inserts of the 1-core flush size ({int(matched):,} rows "
              f"a table) with theirs ({m_settled:,.0f})")
        # Bound: the flush interval (1 s) plus one insert (the longest seen is at most 2x the mean).
        bound = 1.0 + 2 * r["seconds_per_flush"]
        print(f"    ack p99 {r['p99']:.2f} s vs bound flush interval + one insert ~ {bound:.2f} s: "
              f"{'within' if r['p99'] <= bound else 'OVER'}")
    two_cores = dict(runs).get("2 cores")
    print(f"  targets (issue 15): 1 core {base['rate']:,.0f} points/s wall, {base['cpu_rate']:,.0f} per CPU-second "
          f"(>= 250,000); {base['cpu_rate'] / b_cpu:.1%} of the best raw insert per CPU-second (>= 60%), "
          f"{base['settled_rate'] / b_settled:.1%} counting each one's merges, "
          f"{base['settled_rate'] / m_settled:.1%} of the store's own rate for inserts "
          "of the server's size"
          + (f"; 2 cores {two_cores['rate'] / base['rate']:.2f}x the 1-core wall rate (>= 1.7x)" if two_cores else ""))
    for label, r in runs:
        if args.compare_src is not None and label.endswith(args.compare_src.name):
            this = dict(runs)[label.rsplit(",", 1)[0]]
            print(f"  this tree vs {args.compare_src.name}, {label.split(',')[0]}: "
                  f"{this['rate'] / r['rate']:.2f}x wall, {this['cpu_rate'] / r['cpu_rate']:.2f}x per CPU-second")
    return 0


if __name__ == "__main__":
    sys.exit(main())
