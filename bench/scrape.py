"""Scrape + normalise a large vLLM V1 exposition (8 engines x 20 models); prints scrapes/s per core.

The exposition comes from a real prometheus_client registry declared like vLLM V1's
`PrometheusStatLogger` (families, labels and buckets of METRICS_vllm_v1.md), served by a
separate `python -m http.server` process over loopback so the measured process does only the
agent's work. Baseline in the same run: prometheus_client's text parser alone on the same text.
Per-core figures divide by this process's CPU time, not wall time.
"""
from __future__ import annotations

import itertools
import random
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.parser import text_string_to_metric_families

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))
from infersight.collectors.inference import Endpoint, InferenceCollector

ENGINES, MODELS, ROUNDS = 8, 20, 8
LAT = [0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0, 120.0, 240.0, 480.0,
       960.0, 1920.0, 7680.0]
TOK = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000]


def exposition(seed: int) -> str:
    rng = random.Random(seed)
    reg = CollectorRegistry()
    lab = ["model_name", "engine"]
    gauges = [Gauge(n, n, lab, registry=reg) for n in
              ("vllm:num_requests_running", "vllm:num_requests_waiting", "vllm:kv_cache_usage_perc")]
    counters = [Counter(n, n, lab, registry=reg) for n in
                ("vllm:prompt_tokens", "vllm:generation_tokens", "vllm:num_preemptions",
                 "vllm:prefix_cache_queries", "vllm:prefix_cache_hits")]
    success = Counter("vllm:request_success", "finished", [*lab, "finished_reason"], registry=reg)
    hists = [Histogram("vllm:time_to_first_token_seconds", "ttft", lab, registry=reg,
                       buckets=[0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0,
                                7.5, 10.0, 20.0, 40.0, 80.0, 160.0, 640.0, 2560.0]),
             Histogram("vllm:time_per_output_token_seconds", "tpot", lab, registry=reg,
                       buckets=[0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5,
                                10.0, 20.0, 40.0, 80.0])]
    hists += [Histogram(n, n, lab, registry=reg, buckets=LAT) for n in
              ("vllm:e2e_request_latency_seconds", "vllm:request_queue_time_seconds",
               "vllm:request_inference_time_seconds", "vllm:request_prefill_time_seconds",
               "vllm:request_decode_time_seconds")]
    hists += [Histogram(n, n, lab, registry=reg, buckets=TOK) for n in
              ("vllm:request_prompt_tokens", "vllm:request_generation_tokens", "vllm:request_params_max_tokens")]
    for m in range(MODELS):
        for e in range(ENGINES):
            key = (f"org/model-{m}", str(e))
            for g in gauges:
                g.labels(*key).set(rng.random())
            for c in counters:
                c.labels(*key).inc(rng.randint(1000, 10**6))
            for reason in ("stop", "length", "abort", "error"):
                success.labels(*key, reason).inc(rng.randint(1, 1000))
            for h in hists:
                for _ in range(5):
                    h.labels(*key).observe(rng.expovariate(1.0))
    return generate_latest(reg).decode()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rate(fn, rounds: int) -> tuple[float, float]:
    cpu, wall = time.process_time(), time.perf_counter()
    for i in range(rounds):
        fn(i)
    return rounds / (time.process_time() - cpu), rounds / (time.perf_counter() - wall)


def main() -> int:
    texts = [exposition(1), exposition(2)]
    lines = texts[0].count("\n")
    series = sum(1 for ln in texts[0].splitlines() if ln and not ln.startswith("#"))
    with tempfile.TemporaryDirectory() as tmp:
        for i, t in enumerate(texts):
            Path(tmp, f"m{i}").write_text(t)
        port = free_port()
        server = subprocess.Popen([sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1",
                                   "--directory", tmp], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 10
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.05)

            def parse_only(i: int) -> None:
                for fam in text_string_to_metric_families(texts[i % 2]):
                    for _ in fam.samples:
                        pass

            cycle = itertools.cycle(texts)
            in_memory = InferenceCollector([Endpoint(url="http://127.0.0.1:1/metrics")],
                                           fetch=lambda url, timeout: next(cycle))
            points = [0]

            def normalise(i: int) -> None:
                points[0] = len(list(in_memory.collect()))

            # Alternating files make every scrape produce real deltas (and some counter resets).
            urls = [f"http://127.0.0.1:{port}/m{i}" for i in range(2)]
            http = [InferenceCollector([Endpoint(url=u)]) for u in urls]

            def over_http(i: int) -> None:
                list(http[i % 2].collect())

            normalise(0)  # baseline scrape, not timed
            for c in http:
                list(c.collect())
            base_cpu, base_wall = rate(parse_only, ROUNDS)
            norm_cpu, norm_wall = rate(normalise, ROUNDS)
            http_cpu, http_wall = rate(over_http, ROUNDS)
        finally:
            server.terminate()
            server.wait(timeout=10)
    print(f"exposition: {ENGINES} engines x {MODELS} models, {lines} lines, {series} samples, "
          f"{len(texts[0]) / 1e6:.2f} MB; {points[0]} normalised points per scrape")
    print(f"baseline  parse only (prometheus_client): {base_cpu:7.2f} scrapes/s per core ({base_wall:.2f} wall)")
    print(f"parse + normalise + deltas (in memory):   {norm_cpu:7.2f} scrapes/s per core ({norm_wall:.2f} wall)"
          f"  = {norm_cpu / base_cpu:.2f} x baseline")
    print(f"full scrape over loopback HTTP:           {http_cpu:7.2f} scrapes/s per core ({http_wall:.2f} wall)"
          f"  = {http_cpu / base_cpu:.2f} x baseline")
    print(f"at a 10 s scrape interval one core keeps up with ~{int(http_cpu * 10)} such endpoints")
    return 0


if __name__ == "__main__":
    sys.exit(main())
