"""vLLM: V0 names and V1 names (every V1 series carries an `engine` label, kept as is)."""
from __future__ import annotations

from collections.abc import Iterable, Mapping

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
from infersight.collectors.inference.model import Context, Reading, first, histograms, values

PREFIX = "vllm:"
_M = "model_name"
# finished_reason values that are failures; stop, length and repetition are normal completions.
BAD_REASONS = frozenset({"abort", "error"})

# Every family `readings` reads: the collector parses only these lines.
FAMILIES = frozenset({
    "vllm:request_success", "vllm:e2e_request_latency_seconds", "vllm:time_to_first_token_seconds",
    "vllm:request_time_per_output_token_seconds", "vllm:time_per_output_token_seconds",
    "vllm:inter_token_latency_seconds", "vllm:request_queue_time_seconds", "vllm:prompt_tokens",
    "vllm:generation_tokens", "vllm:prompt_tokens_cached", "vllm:prefix_cache_hits", "vllm:gpu_prefix_cache_hits",
    "vllm:num_requests_running", "vllm:num_requests_waiting", "vllm:kv_cache_usage_perc",
    "vllm:gpu_cache_usage_perc"})


def readings(families: Mapping[str, Metric], ctx: Context) -> Iterable[Reading]:
    """Requests by finish reason, latency histograms, tokens and queue gauges; V1 names first where both exist."""
    names: tuple[str, ...]
    fam = families.get("vllm:request_success")
    if fam is not None:
        for s in fam.samples:
            if s.name.endswith("_created"):
                continue
            reason = s.labels.get("finished_reason", "")
            bad = reason in BAD_REASONS
            attrs = ctx.attrs(s.labels, _M)
            attrs[OUTCOME] = "bad" if bad else "good"
            if bad:
                attrs[ERROR_TYPE] = reason
            yield Reading(REQUESTS, ("vllm:request_success", tuple(sorted(s.labels.items()))), attrs, s.value)
    # Alternatives per normalised histogram, the most precise first.
    for spec, names in ((DURATION, ("vllm:e2e_request_latency_seconds",)),
                        (TTFT, ("vllm:time_to_first_token_seconds",)),
                        (TPOT, ("vllm:request_time_per_output_token_seconds",
                                "vllm:time_per_output_token_seconds", "vllm:inter_token_latency_seconds")),
                        (QUEUE, ("vllm:request_queue_time_seconds",))):
        fam = first(families, *names)
        if fam is not None:
            yield from histograms(fam, ctx, spec, _M)
    for token_type, names in (("input", ("vllm:prompt_tokens",)),
                              ("output", ("vllm:generation_tokens",)),
                              ("cached_input", ("vllm:prompt_tokens_cached", "vllm:prefix_cache_hits",
                                                "vllm:gpu_prefix_cache_hits"))):
        fam = first(families, *names)
        if fam is not None:
            yield from values(fam, ctx, TOKENS, _M, {TOKEN_TYPE: token_type})
    for spec, names in ((RUNNING, ("vllm:num_requests_running",)),
                        (WAITING, ("vllm:num_requests_waiting",)),
                        (KV_CACHE, ("vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc"))):
        fam = first(families, *names)
        if fam is not None:
            yield from values(fam, ctx, spec, _M)
