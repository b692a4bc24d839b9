"""Fleet-shaped load: N nodes x (8 GPUs + host + one inference endpoint) at a 10 s interval → one server.

Each node's request is what a real agent sends: the NVML collector over the packaged H200 replay
(infersight.testing.nvml_replay, 8 GPUs, stepping through its phases), the host collector (this
machine's psutil), and the inference collector scraping a vLLM fixture, grouped and encoded by
`exporters.encode` with the node's own resource (host.name, host.id, cloud). Simulated time is
compressed: `--minutes` of 10 s rounds ending now are sent as fast as the server acknowledges,
`--concurrency` requests in flight. Reported: sustained points/s, the server's CPU (share of a
core) and peak RSS, its write-queue depth (sampled from /metrics while sending), and the SLO
engine's evaluation time over the resulting data (examples/slos, from
infersight_slo_evaluation_duration_seconds; the engine evaluates every `--slo-interval-seconds`, the
product's 30 s by default, also while the fleet sends). Default 100 nodes; `--nodes 2000` is the full fleet.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "bench"))

from infersight.collectors.base import Point  # noqa: E402
from infersight.collectors.host import HostCollector  # noqa: E402
from infersight.collectors.inference.collector import Endpoint, InferenceCollector  # noqa: E402
from infersight.collectors.nvml import NvmlCollector  # noqa: E402
from infersight.exporters import encode  # noqa: E402
from infersight.testing.nvml_replay import ReplayNvml, load_capture  # noqa: E402
from ingest import _metric, cpu_seconds, percentile, wait_ready  # noqa: E402

INTERVAL_S = 10
VLLM = ROOT / "tests/fixtures/vllm/datadog_vllm_metrics.txt"
CLOUDS = (("aws", "us-east-1"), ("aws", "us-west-2"), ("gcp", "us-central1"), ("azure", "eastus"))


@dataclass(frozen=True)
class Scoped:
    scope: str
    points: tuple[Point, ...]
    time_ns: int | None = None  # None: each point gets the round's time (`to_metrics_data`'s now_ns)


def round_points(rounds: int) -> list[list[Scoped]]:
    """Per round: the points one node's agent collects (NVML replay steps, host, inference)."""
    r = ReplayNvml(load_capture(), gpus=8)
    nvml = NvmlCollector(r, clock=r.clock)
    steps = r.steps("matmul_bf16") + r.steps("memcopy")
    host = HostCollector(psutil)
    text = VLLM.read_text()
    inference = InferenceCollector([Endpoint(url="http://127.0.0.1:8000/metrics", kind="vllm")],
                                   fetch=lambda url, timeout: text)
    r.seek(steps[0])
    nvml.collect()
    host.collect()
    inference.collect()
    out = []
    for i in range(rounds):
        r.seek(steps[1 + i % (len(steps) - 1)])
        out.append([Scoped(name, tuple(replace(p, time_ns=None) for p in c.collect()))
                    for name, c in (("infersight.nvml", nvml), ("infersight.host", host),
                                    ("infersight.inference", inference))])
    nvml.close()
    return out


def node_request(node: int, batches: list[Scoped], t_ns: int) -> bytes:
    provider, region = CLOUDS[node % len(CLOUDS)]
    resource = {"service.name": "infersight-agent", "host.name": f"gpu-node-{node:05d}",
                "host.id": f"i-{node:016x}", "cloud.provider": provider, "cloud.region": region,
                "host.type": "p5e.48xlarge"}
    return encode.encode(encode.to_metrics_data(batches, resource, t_ns - INTERVAL_S * 10**9, t_ns))


async def send(base: str, nodes: int, rounds: list[list[Scoped]], concurrency: int, t0_ns: int,
               samples: list[float]) -> tuple[float, int, list[float]]:
    import aiohttp

    jobs = [(ri, n) for ri in range(len(rounds)) for n in range(nodes)]
    jobs.reverse()
    latencies: list[float] = []
    points = 0
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as session:
        async def worker() -> None:
            nonlocal points
            while jobs:
                ri, n = jobs.pop()
                body = node_request(n, rounds[ri], t0_ns + ri * INTERVAL_S * 10**9)
                points += sum(len(b.points) for b in rounds[ri])
                t = time.perf_counter()
                async with session.post(f"{base}/v1/metrics", data=body, headers={
                        "Content-Type": "application/x-protobuf", "Idempotency-Key": f"fleet-{ri}-{n}"}) as r:
                    if r.status != 200:
                        raise SystemExit(f"node {n} round {ri}: HTTP {r.status}: {await r.text()}")
                    await r.read()
                latencies.append(time.perf_counter() - t)

        async def depth() -> None:
            # A session of its own: the senders keep every connection of theirs busy.
            async with aiohttp.ClientSession() as own:
                while jobs:
                    async with own.get(f"{base}/metrics") as r:
                        samples.append(_metric(await r.text(), "infersight_server_queue_rows"))
                    await asyncio.sleep(0.5)

        start = time.perf_counter()
        sampler = asyncio.create_task(depth())
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        sampler.cancel()
        return time.perf_counter() - start, points, latencies


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--nodes", type=int, default=100)
    ap.add_argument("--minutes", type=float, default=10.0, help="simulated minutes (10 s rounds)")
    ap.add_argument("--concurrency", type=int, default=256,
                    help="requests in flight (a fleet's agents each send their own: 2,000 nodes may have 2,000)")
    ap.add_argument("--parallel-inserts", type=int, default=None,
                    help="server.parallel_inserts (default: the server's own)")
    ap.add_argument("--slo-interval-seconds", type=float, default=30.0,
                    help="the SLO engine's evaluation interval (the product's default: 30 s)")
    args = ap.parse_args()
    rounds = round_points(int(args.minutes * 60 / INTERVAL_S))
    now_ns = time.time_ns() // 10**9 * 10**9
    t0_ns = now_ns - len(rounds) * INTERVAL_S * 10**9

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    base = f"http://127.0.0.1:{port}"
    tmp = tempfile.mkdtemp(prefix="infersight-bench-fleet-")
    cfg = Path(tmp) / "server.yaml"
    extra = f"  parallel_inserts: {args.parallel_inserts}\n" if args.parallel_inserts else ""
    cfg.write_text(f"server:\n  grpc_listen: null\n  clickhouse_listen: null\n{extra}"
                   f"slo:\n  interval_seconds: {args.slo_interval_seconds:g}\n  paths: [{ROOT / 'examples/slos'}]\n")
    cmd = [sys.executable, "-m", "infersight.cli", "--log-level", "WARNING", "server", "--config", str(cfg),
           "--data-dir", str(Path(tmp) / "data"), "--listen", f"127.0.0.1:{port}"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT / "src")})
    samples: list[float] = []
    try:
        wait_ready(base, proc)
        server = psutil.Process(proc.pid)
        cpu0 = cpu_seconds(server)
        elapsed, points, latencies = asyncio.run(send(base, args.nodes, rounds, args.concurrency, t0_ns, samples))
        cpu = cpu_seconds(server) - cpu0
        rss = server.memory_info().rss
        import urllib.request

        def slo() -> tuple[float, float]:
            with urllib.request.urlopen(f"{base}/metrics", timeout=30) as r:
                text = r.read().decode()
            return (_metric(text, "infersight_slo_evaluation_duration_seconds_count"),
                    _metric(text, "infersight_slo_evaluation_duration_seconds_sum"))

        n0, s0 = slo()
        deadline = time.time() + max(120.0, 3 * args.slo_interval_seconds)
        while time.time() < deadline:  # evaluations over the complete data
            time.sleep(1)
            n1, s1 = slo()
            if n1 - n0 >= 2:
                break
        evals, eval_s = n1 - n0, s1 - s0
    finally:
        proc.terminate()
        proc.wait(timeout=60)
        shutil.rmtree(tmp, ignore_errors=True)
    requests = args.nodes * len(rounds)
    print(f"fleet: {args.nodes} nodes x (8 GPUs + host + 1 vLLM endpoint), {len(rounds)} rounds of "
          f"{INTERVAL_S} s ({args.minutes:g} simulated min), {requests:,} requests, {points:,} points, "
          f"{args.concurrency} in flight (load {os.getloadavg()[0]:.1f})")
    print(f"  sustained: {points / elapsed:,.0f} points/s, {requests / elapsed:,.0f} requests/s "
          f"({elapsed:.1f} s for {args.minutes:g} simulated min: {args.minutes * 60 / elapsed:.1f}x real time; "
          f"the fleet sends {args.nodes * points / requests / INTERVAL_S:,.0f} points/s)")
    print(f"  server: {cpu / elapsed:.2f} cores busy ({points / cpu:,.0f} points per CPU-second), "
          f"RSS {rss / 2**20:.0f} MiB; ack p50 {percentile(latencies, .5) * 1000:.0f} ms, "
          f"p99 {percentile(latencies, .99) * 1000:.0f} ms")
    if samples:
        print(f"  write queue: mean {sum(samples) / len(samples):,.0f} rows, max {max(samples):,.0f} rows "
              f"({len(samples)} samples)")
    print(f"  SLO evaluation over the result: {eval_s / evals * 1000:.0f} ms per cycle ({evals:.0f} cycles, "
          f"every {args.slo_interval_seconds:g} s)" if evals else "  SLO evaluation: no cycle finished in time")
    return 0


if __name__ == "__main__":
    sys.exit(main())
