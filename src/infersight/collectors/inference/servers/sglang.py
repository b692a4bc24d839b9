"""SGLang (`--enable-metrics`): `sglang:` families; gauges carry `tp_rank`, kept as is.

The captured version exposes no failure counter, so every finished request counts as good.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping

from prometheus_client.metrics_core import Metric

from infersight.collectors.inference.metrics import (
    DURATION,
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
from infersight.collectors.inference.model import Context, Reading, first, histograms, values

PREFIX = "sglang:"
_M = "model_name"

# Every family `readings` reads: the collector parses only these lines.
FAMILIES = frozenset({
    "sglang:num_requests", "sglang:e2e_request_latency_seconds", "sglang:time_to_first_token_seconds",
    "sglang:inter_token_latency_seconds", "sglang:time_per_output_token_seconds", "sglang:queue_time_seconds",
    "sglang:prompt_tokens", "sglang:generation_tokens", "sglang:cached_tokens", "sglang:num_running_reqs",
    "sglang:num_queue_reqs", "sglang:token_usage"})


def readings(families: Mapping[str, Metric], ctx: Context) -> Iterable[Reading]:
    fam = families.get("sglang:num_requests")
    if fam is not None:
        yield from values(fam, ctx, REQUESTS, _M, {OUTCOME: "good"})
    for spec, names in ((DURATION, ("sglang:e2e_request_latency_seconds",)),
                        (TTFT, ("sglang:time_to_first_token_seconds",)),
                        (TPOT, ("sglang:inter_token_latency_seconds", "sglang:time_per_output_token_seconds")),
                        (QUEUE, ("sglang:queue_time_seconds",))):
        fam = first(families, *names)
        if fam is not None:
            yield from histograms(fam, ctx, spec, _M)
    for token_type, name in (("input", "sglang:prompt_tokens"), ("output", "sglang:generation_tokens"),
                             ("cached_input", "sglang:cached_tokens")):
        fam = families.get(name)
        if fam is not None:
            yield from values(fam, ctx, TOKENS, _M, {TOKEN_TYPE: token_type})
    for spec, name in ((RUNNING, "sglang:num_running_reqs"), (WAITING, "sglang:num_queue_reqs"),
                       (KV_CACHE, "sglang:token_usage")):
        fam = families.get(name)
        if fam is not None:
            yield from values(fam, ctx, spec, _M)
