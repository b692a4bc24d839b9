"""llm-d and the Gateway API Inference Extension endpoint picker (EPP): `inference_model_*`
(renamed `inference_objective_*` in GIE v1) and `inference_pool_*` families.

Requests: `request_total` counts every request, `request_error_total` the failed ones by
`error_code`; good = total - errors of the same (model_name, target_model_name) series, so nothing
is counted twice. The model is `model_name` (what the client asked for; `target_model_name` is
where traffic splitting sent it). The EPP sees no first token, so there is no TTFT; its
`normalized_time_per_output_token_seconds` (e2e / output tokens) becomes time per output token.
Pool gauges carry the pool `name`, not a model: the endpoint's `model` (or `unknown`) is used;
waiting is the sum of `per_pod_queue_size` over the pool's pods.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping

from prometheus_client.metrics_core import Metric

from infersight.collectors.inference.metrics import (
    DURATION,
    ERROR_TYPE,
    KV_CACHE,
    OUTCOME,
    REQUESTS,
    RUNNING,
    TOKEN_TYPE,
    TOKENS,
    TPOT,
    WAITING,
)
from infersight.collectors.inference.model import Context, Reading, first, histograms, series_key, values

PREFIX = ("inference_objective_", "inference_model_", "inference_pool_")
_M = "model_name"
_NEW, _OLD = "inference_objective_", "inference_model_"
_SUFFIXES = ("request", "request_error", "request_duration_seconds", "input_tokens", "output_tokens",
             "running_requests", "normalized_time_per_output_token_seconds")

# Every family `readings` reads: the collector parses only these lines.
FAMILIES = frozenset({p + s for p in (_NEW, _OLD) for s in _SUFFIXES} | {
    "inference_pool_average_kv_cache_utilization", "inference_pool_per_pod_queue_size"})


def _fam(families: Mapping[str, Metric], suffix: str) -> Metric | None:
    return first(families, _NEW + suffix, _OLD + suffix)


def readings(families: Mapping[str, Metric], ctx: Context) -> Iterable[Reading]:
    total, errors = _fam(families, "request"), _fam(families, "request_error")
    failed: dict[tuple, float] = {}
    if errors is not None:
        for s in errors.samples:
            if s.name.endswith("_created"):
                continue
            attrs = ctx.attrs(s.labels, _M)
            attrs[OUTCOME] = "bad"
            attrs[ERROR_TYPE] = s.labels.get("error_code") or "error"
            base = tuple(sorted((k, v) for k, v in s.labels.items() if k != "error_code"))
            failed[base] = failed.get(base, 0.0) + s.value
            yield Reading(REQUESTS, series_key(s.name, s.labels), attrs, s.value)
    if total is not None:
        for s in total.samples:
            if s.name.endswith("_created"):
                continue
            attrs = ctx.attrs(s.labels, _M)
            attrs[OUTCOME] = "good"
            base = tuple(sorted(s.labels.items()))
            yield Reading(REQUESTS, ("good", base), attrs, max(s.value - failed.get(base, 0.0), 0.0))
    for spec, suffix in ((DURATION, "request_duration_seconds"), (TPOT, "normalized_time_per_output_token_seconds")):
        fam = _fam(families, suffix)
        if fam is not None:
            yield from histograms(fam, ctx, spec, _M)
    for token_type, suffix in (("input", "input_tokens"), ("output", "output_tokens")):
        fam = _fam(families, suffix)
        if fam is not None:
            for h in histograms(fam, ctx, TOKENS, _M):
                h.attrs[TOKEN_TYPE] = token_type
                yield Reading(TOKENS, h.key, h.attrs, h.value)
    fam = _fam(families, "running_requests")
    if fam is not None:
        yield from values(fam, ctx, RUNNING, _M)
    fam = families.get("inference_pool_average_kv_cache_utilization")
    if fam is not None:
        yield from values(fam, ctx, KV_CACHE, None)
    fam = families.get("inference_pool_per_pod_queue_size")
    if fam is not None:
        pools: dict[str, float] = {}
        for s in fam.samples:
            pools[s.labels.get("name", "")] = pools.get(s.labels.get("name", ""), 0.0) + s.value
        for pool, waiting in pools.items():
            yield Reading(WAITING, ("inference_pool_per_pod_queue_size", (("name", pool),)),
                          ctx.attrs({}, None), waiting)
