"""TensorRT-LLM `trtllm-serve`: Prometheus text at `/prometheus/metrics` (`trtllm_` families, labels
`model_name` and `engine_type`).

`trtllm-serve` answers `/metrics` with JSON iteration statistics (a list of objects with `iter`,
`iterLatencyMS`, `kvCacheStats`, ...), not Prometheus text: the scraper detects it and says which
URL to use (`is_iteration_stats`, `JSON_HINT`).
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from prometheus_client.metrics_core import Metric

from infersight.collectors.inference.metrics import (
    DURATION,
    ERROR_TYPE,
    KV_CACHE,
    OUTCOME,
    QUEUE,
    REQUESTS,
    RUNNING,
    TOKEN_TYPE,
    TOKENS,
    TPOT,
    TTFT,
    WAITING,
)
from infersight.collectors.inference.model import Context, Reading, first, histograms, series_key, values

PREFIX = "trtllm_"
_M = "model_name"
# finished_reason values that are failures; stop and length are normal completions.
BAD_REASONS = frozenset({"abort", "error", "cancelled", "timeout"})
JSON_HINT = ("answered trtllm-serve's JSON iteration statistics, not Prometheus text; "
             "TensorRT-LLM serves Prometheus metrics at /prometheus/metrics: point `url` there")
_ITER_KEYS = frozenset({"iter", "iterLatencyMS", "kvCacheStats", "numActiveRequests", "gpuMemUsage"})

# Every family `readings` reads: the collector parses only these lines.
FAMILIES = frozenset({
    "trtllm_request_success", "trtllm_e2e_request_latency_seconds", "trtllm_time_to_first_token_seconds",
    "trtllm_time_per_output_token_seconds", "trtllm_request_queue_time_seconds", "trtllm_prompt_tokens",
    "trtllm_generation_tokens", "trtllm_num_requests_running", "trtllm_num_requests_waiting",
    "trtllm_kv_cache_utilization"})


def is_iteration_stats(data: Any) -> bool:
    """True for the JSON `trtllm-serve` answers on `/metrics` (a list of per-iteration objects)."""
    items = data if isinstance(data, list) else [data]
    return any(isinstance(i, dict) and len(_ITER_KEYS & set(i)) >= 2 for i in items)


def readings(families: Mapping[str, Metric], ctx: Context) -> Iterable[Reading]:
    fam = families.get("trtllm_request_success")
    if fam is not None:
        for s in fam.samples:
            if s.name.endswith("_created"):
                continue
            reason = s.labels.get("finished_reason", "")
            attrs = ctx.attrs(s.labels, _M)
            attrs[OUTCOME] = "bad" if reason in BAD_REASONS else "good"
            if reason in BAD_REASONS:
                attrs[ERROR_TYPE] = reason
            yield Reading(REQUESTS, series_key(s.name, s.labels), attrs, s.value)
    for spec, name in ((DURATION, "trtllm_e2e_request_latency_seconds"),
                       (TTFT, "trtllm_time_to_first_token_seconds"),
                       (TPOT, "trtllm_time_per_output_token_seconds"),
                       (QUEUE, "trtllm_request_queue_time_seconds")):
        fam = families.get(name)
        if fam is not None:
            yield from histograms(fam, ctx, spec, _M)
    for token_type, name in (("input", "trtllm_prompt_tokens"), ("output", "trtllm_generation_tokens")):
        fam = families.get(name)
        if fam is not None:
            yield from values(fam, ctx, TOKENS, _M, {TOKEN_TYPE: token_type})
    for spec, names in ((RUNNING, ("trtllm_num_requests_running",)), (WAITING, ("trtllm_num_requests_waiting",)),
                        (KV_CACHE, ("trtllm_kv_cache_utilization",))):
        fam = first(families, *names)
        if fam is not None:
            yield from values(fam, ctx, spec, _M)
