"""The request model behind every simulated server: load over the day, latency distributions, tokens.

Load follows the sun: each region's rate swings between 35 % and 100 % of its peak, highest at 16:00
local time. TTFT, TPOT, queue time and end-to-end latency are log-normal with a median per cloud,
shifted by the node's role (prefill-heavy nodes answer the first token sooner and decode slower;
decode-heavy ones the other way round) and by load. Histograms are filled from the distributions'
CDFs on the rollups' own bucket bounds (what a server exposes when its buckets match), so a step of
ten thousand requests costs one CDF per bucket, not ten thousand samples.

`ServerModel` keeps a server's cumulative counters and renders them as a vLLM V1 or SGLang
exposition; `neuron_document` renders a neuron-monitor report for the same window.
"""
from __future__ import annotations

import copy
import json
import math
import random
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

from infersight.demo.fleet import ApiDeployment, Node
from infersight.demo.incidents import Script
from infersight.rollups import LATENCY_BOUNDS

# Median TTFT and TPOT (seconds) of a 70B model at low load, per cloud.
CLOUD_LATENCY: dict[str, tuple[float, float]] = {
    "aws": (0.11, 0.028), "azure": (0.14, 0.032), "gcp": (0.10, 0.026), "oracle_cloud": (0.13, 0.030),
    "coreweave": (0.085, 0.024), "lambda": (0.095, 0.025)}
ROLE_FACTORS = {"prefill": (0.8, 1.25), "decode": (1.25, 0.8), "mixed": (0.9, 0.7)}
CACHE_HIT = {"prefill": 0.35, "decode": 0.5, "mixed": 0.25}
REGION_UTC_OFFSET = {"us-east-1": -5, "us-east-2": -5, "us-west-2": -8, "eastus": -5, "eastus2": -5,
                     "us-central1": -6, "us-ashburn-1": -5, "US-EAST-04": -5, "swedencentral": 1,
                     "europe-west4": 1, "eu-frankfurt-1": 1}
SIGMA = {"ttft": 0.35, "tpot": 0.3, "e2e": 0.5, "queue": 0.8}
INPUT_TOKENS_MEDIAN, INPUT_SIGMA = 1400.0, 0.7
OUTPUT_TOKENS_MEDIAN, OUTPUT_SIGMA = 220.0, 0.6
BASELINE_ERROR_RATIO = 0.0002
EXECUTIONS_PER_REQUEST = 40
OVERRUN_MAX_RATE_FACTOR = 4.0
API_ERROR_RATIO = 0.0003
API_TTFT_SIGMA = 0.3


def diurnal(t: float, region: str) -> float:
    """Load as a share of peak (0.35..1) at epoch second `t` in `region`'s local time."""
    hour = (t / 3600.0 + REGION_UTC_OFFSET.get(region, 0)) % 24
    return 0.35 + 0.65 * (0.5 - 0.5 * math.cos(2 * math.pi * (hour - 4) / 24))


def lognormal_mean(median: float, sigma: float) -> float:
    return median * math.exp(sigma * sigma / 2)


def lognormal_cdf(x: float, median: float, sigma: float) -> float:
    if x <= 0:
        return 0.0
    return 0.5 * (1 + math.erf((math.log(x) - math.log(median)) / (sigma * math.sqrt(2))))


def bucket_counts(n: int, bounds: tuple[float, ...], median: float, sigma: float) -> list[int]:
    """`n` observations of LogNormal(median, sigma) over `bounds`: len(bounds)+1 non-cumulative counts summing to n."""
    cum = [round(n * lognormal_cdf(b, median, sigma)) for b in bounds] + [n]
    return [c - p for c, p in zip(cum, [0, *cum[:-1]], strict=True)]


@dataclass
class Histogram:
    bounds: tuple[float, ...]
    buckets: list[int] = field(default_factory=list)
    total: float = 0.0

    def __post_init__(self) -> None:
        self.buckets = self.buckets or [0] * (len(self.bounds) + 1)

    def observe(self, n: int, median: float, sigma: float) -> None:
        for i, c in enumerate(bucket_counts(n, self.bounds, median, sigma)):
            self.buckets[i] += c
        self.total += n * lognormal_mean(median, sigma)

    @property
    def count(self) -> int:
        return sum(self.buckets)


@dataclass(frozen=True)
class Medians:
    """What one request looks like on a node at one moment (seconds, tokens)."""

    ttft: float
    tpot: float
    queue: float
    e2e: float


def node_medians(node: Node, load: float, latency_factor: float) -> Medians:
    ttft0, tpot0 = CLOUD_LATENCY.get(node.cloud, (0.12, 0.03))
    f_ttft, f_tpot = ROLE_FACTORS[node.type.role]
    if node.type.accelerator in ("trainium", "inferentia"):
        ttft0, tpot0 = ttft0 * 0.8, tpot0 * 0.9  # an 8B model
    ttft = ttft0 * f_ttft * (1 + 0.25 * load) * latency_factor
    tpot = tpot0 * f_tpot * (1 + 0.2 * load)
    queue = 0.01 * (1 + 3 * load * load) * latency_factor
    return Medians(ttft, tpot, queue, queue + ttft + tpot * OUTPUT_TOKENS_MEDIAN)


class ServerModel:
    """One node's inference server: cumulative counters advanced through simulated time."""

    def __init__(self, node: Node, script: Script, start: float, seed: int = 0) -> None:
        self.node = node
        self.script = script
        self.t = start
        self.process_start = start - 3600.0
        self.rng = random.Random(f"{seed}-{node.name}")
        self.reasons = {"stop": 0, "length": 0, "abort": 0, "error": 0}
        self.hist = {k: Histogram(LATENCY_BOUNDS[k]) for k in ("ttft", "tpot", "e2e", "queue")}
        self.prompt_tokens = self.generation_tokens = self.cached_tokens = 0
        self.running = self.waiting = 0.0
        self.kv_usage = 0.0
        self.last_requests = self.last_errors = 0
        self.last_load = 0.0

    def advance(self, t: float) -> None:
        """Add the requests finished between the previous call and `t`."""
        dt = t - self.t
        if dt <= 0:
            return
        mid = self.t + dt / 2
        node = self.node
        load = diurnal(mid, node.region)
        rate = node.type.peak_rps * load * max(0.0, 1 + self.rng.gauss(0, 0.05))
        n = int(rate * dt + self.rng.random())
        med = node_medians(node, load, self.script.latency_factor(mid, node.cloud, node.region))
        bad_ratio = max(BASELINE_ERROR_RATIO,
                        self.script.error_ratio(mid, node.cloud, node.region, node.type.accelerator))
        bad = int(n * bad_ratio + self.rng.random())
        good = n - bad
        self.reasons["abort"] += bad // 5
        self.reasons["error"] += bad - bad // 5
        length = int(good * 0.15)
        self.reasons["length"] += length
        self.reasons["stop"] += good - length
        for kind, median in (("ttft", med.ttft), ("tpot", med.tpot), ("queue", med.queue), ("e2e", med.e2e)):
            self.hist[kind].observe(n, median, SIGMA[kind])
        prompt = int(n * lognormal_mean(INPUT_TOKENS_MEDIAN, INPUT_SIGMA))
        self.prompt_tokens += prompt
        self.cached_tokens += int(prompt * CACHE_HIT[node.type.role] * (0.9 + 0.2 * self.rng.random()))
        self.generation_tokens += int(n * lognormal_mean(OUTPUT_TOKENS_MEDIAN, OUTPUT_SIGMA))
        # Little's law: in flight = rate x time in system.
        self.running = round(rate * lognormal_mean(med.e2e, SIGMA["e2e"]), 1)
        self.waiting = round(rate * lognormal_mean(med.queue, SIGMA["queue"]), 1)
        self.kv_usage = min(0.98, 0.25 + 0.65 * load)
        self.last_requests, self.last_errors, self.last_load = n, bad, load
        self.t = t

    def exposition(self) -> str:
        return self._vllm() if self.node.type.server == "vllm" else self._sglang()

    def _hist_lines(self, name: str, labels: str) -> list[str]:
        h = self.hist_for(name)
        out = [f"# TYPE {name} histogram"]
        cum = 0
        for b, c in zip(h.bounds, h.buckets, strict=False):
            cum += c
            out.append(f'{name}_bucket{{{labels},le="{b}"}} {float(cum)}')
        out.append(f'{name}_bucket{{{labels},le="+Inf"}} {float(h.count)}')
        out.append(f"{name}_count{{{labels}}} {float(h.count)}")
        out.append(f"{name}_sum{{{labels}}} {h.total}")
        return out

    _KIND_OF = {"time_to_first_token_seconds": "ttft", "request_time_per_output_token_seconds": "tpot",
                "inter_token_latency_seconds": "tpot", "e2e_request_latency_seconds": "e2e",
                "request_queue_time_seconds": "queue", "queue_time_seconds": "queue"}

    def hist_for(self, name: str) -> Histogram:
        return self.hist[self._KIND_OF[name.split(":", 1)[1]]]

    def _vllm(self) -> str:
        model = self.node.type.model
        labels = f'engine="0",model_name="{model}"'
        lines = ["# TYPE process_start_time_seconds gauge", f"process_start_time_seconds {self.process_start}",
                 "# HELP vllm:request_success_total Count of successfully processed requests.",
                 "# TYPE vllm:request_success_total counter"]
        for reason, n in self.reasons.items():
            lines.append(f'vllm:request_success_total{{{labels},finished_reason="{reason}"}} {float(n)}')
        for name in ("vllm:time_to_first_token_seconds", "vllm:request_time_per_output_token_seconds",
                     "vllm:e2e_request_latency_seconds", "vllm:request_queue_time_seconds"):
            lines += self._hist_lines(name, labels)
        for name, v in (("vllm:prompt_tokens_total", self.prompt_tokens),
                        ("vllm:generation_tokens_total", self.generation_tokens),
                        ("vllm:prefix_cache_hits_total", self.cached_tokens)):
            lines += [f"# TYPE {name} counter", f"{name}{{{labels}}} {float(v)}"]
        for name, g in (("vllm:num_requests_running", self.running), ("vllm:num_requests_waiting", self.waiting),
                        ("vllm:kv_cache_usage_perc", self.kv_usage)):
            lines += [f"# TYPE {name} gauge", f"{name}{{{labels}}} {float(g)}"]
        return "\n".join(lines) + "\n"

    def _sglang(self) -> str:
        model = self.node.type.model
        labels = f'model_name="{model}",tp_rank="0"'
        finished = sum(self.reasons.values())
        lines = ["# TYPE process_start_time_seconds gauge", f"process_start_time_seconds {self.process_start}",
                 "# TYPE sglang:num_requests_total counter", f"sglang:num_requests_total{{{labels}}} {float(finished)}"]
        for name in ("sglang:time_to_first_token_seconds", "sglang:inter_token_latency_seconds",
                     "sglang:e2e_request_latency_seconds", "sglang:queue_time_seconds"):
            lines += self._hist_lines(name, labels)
        for name, v in (("sglang:prompt_tokens_total", self.prompt_tokens),
                        ("sglang:generation_tokens_total", self.generation_tokens),
                        ("sglang:cached_tokens_total", self.cached_tokens)):
            lines += [f"# TYPE {name} counter", f"{name}{{{labels}}} {float(v)}"]
        for name, g in (("sglang:num_running_reqs", self.running), ("sglang:num_queue_reqs", self.waiting),
                        ("sglang:token_usage", self.kv_usage)):
            lines += [f"# TYPE {name} gauge", f"{name}{{{labels}}} {float(g)}"]
        return "\n".join(lines) + "\n"


_TEMPLATE: dict[str, Any] | None = None


def neuron_template() -> dict[str, Any]:
    """The recorded trn1 neuron-monitor report the demo's documents are derived from (package data)."""
    global _TEMPLATE
    if _TEMPLATE is None:
        text = resources.files("infersight.demo").joinpath("data", "neuron-monitor_trn1.2xlarge.json").read_text()
        _TEMPLATE = json.loads(text)
    return _TEMPLATE


def neuron_document(server: ServerModel, period: float, seq: int) -> str:
    """A neuron-monitor report for the window the server model last advanced over (one line of JSON)."""
    node = server.node
    doc = copy.deepcopy(neuron_template())
    # neuron-monitor's periods jitter around the configured interval; a repeated period means a repeated window.
    period = round(period - 0.000137 * (seq % 97), 6)
    rt = doc["neuron_runtime_data"][0]
    rep = rt["report"]
    ex = rep["execution_stats"]
    ex["period"] = period
    execs = server.last_requests * EXECUTIONS_PER_REQUEST
    bad = server.last_errors * EXECUTIONS_PER_REQUEST
    ex["execution_summary"].update(completed=execs - bad, completed_with_err=bad, timed_out=0)
    ex["error_summary"].update(generic=0, runtime=bad, hardware=0)
    for g in ("memory_used", "neuron_runtime_vcpu_usage", "neuroncore_counters"):
        rep[g]["period"] = period
    cores = node.type.devices * 2
    util = 20 + 70 * server.last_load
    rep["neuroncore_counters"]["neuroncores_in_use"] = {
        str(c): {"neuroncore_utilization": round(util * (0.9 + 0.02 * (c % 5)), 3)} for c in range(cores)}
    hw = doc["system_data"]["neuron_hw_counters"]
    hw["period"] = period
    hw["neuron_devices"] = [{"neuron_device_index": i, "mem_ecc_corrected": 0, "mem_ecc_uncorrected": 0,
                             "sram_ecc_uncorrected": 0, "sram_ecc_corrected": 0} for i in range(node.type.devices)]
    for g in ("memory_info", "vcpu_usage"):
        doc["system_data"][g]["period"] = period
    doc["neuron_hardware_info"] = {"neuron_device_type": node.type.accelerator,
                                   "neuron_device_count": node.type.devices,
                                   "neuroncore_per_device_count": 2, "error": ""}
    info = doc["instance_info"]
    info.update(instance_id=f"i-demo{node.index:013x}", instance_type=node.type.instance_type,
                instance_availability_zone=node.type.zone, instance_region=node.region)
    return json.dumps(doc, separators=(",", ":"))


@dataclass(frozen=True)
class ApiRequest:
    start: float
    duration: float
    ttft: float
    input_tokens: int
    output_tokens: int
    cached_tokens: int
    error: bool


def api_requests(dep: ApiDeployment, script: Script, t0: float, t1: float, rng: random.Random) -> list[ApiRequest]:
    """The requests an application made to `dep` between `t0` and `t1` (each becomes one span)."""
    mid = (t0 + t1) / 2
    load = diurnal(mid, dep.region)
    factor = script.token_factor(mid, dep.cloud, dep.provider)
    # A runaway client (an agent loop, say) sends more requests as well as longer prompts.
    n = int(dep.peak_rps * load * min(factor, OVERRUN_MAX_RATE_FACTOR) * (t1 - t0) + rng.random())
    out = []
    for _ in range(n):
        ttft = rng.lognormvariate(math.log(dep.ttft_median_seconds), API_TTFT_SIGMA)
        e2e = ttft + rng.lognormvariate(math.log(dep.e2e_median_seconds), 0.45)
        inp = int(rng.lognormvariate(math.log(INPUT_TOKENS_MEDIAN), INPUT_SIGMA) * factor)
        out.append(ApiRequest(t0 + rng.random() * (t1 - t0), e2e, ttft, inp,
                              int(rng.lognormvariate(math.log(OUTPUT_TOKENS_MEDIAN), OUTPUT_SIGMA)),
                              int(inp * 0.2 * rng.random()), rng.random() < API_ERROR_RATIO))
    return out
