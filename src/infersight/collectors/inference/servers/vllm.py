"""vLLM: V0 names and V1 names (every V1 series carries an `engine` label, kept as is).

2025-26 additions: `inter_token_latency_seconds` (the rename of the deprecated
`time_per_output_token_seconds`, preferred over it), `prompt_tokens_by_source_total{source}`
(where `prompt_tokens_cached_total`, their cached sum, is absent: cached input = the
`local_cache_hit` and `external_kv_transfer` sources; `local_compute` was computed)
and `num_requests_waiting_by_reason{reason}` (waiting per reason; what the reasons do not cover
of `num_requests_waiting` is reason `other`, so the reasons always sum to the total).

Availability without an error counter: vLLM's `request_success{finished_reason}` counts requests the
engine finished (stop, length; abort/error only where the engine records them: V1 as released never
does, vllm#31503). A request the API server answers with a 5xx never finished, so the front end's
`http_requests_total{status=5xx}` (`servers/_http.py`) adds it as bad, `error.type=http_5xx` — unless
this exposition's abort/error series are above zero: then the engine records failures and the 5xx are
taken to be among them (never counted twice; a V0 server may under-count 5xx the engine never saw).
"""
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
    WAIT_REASON,
    WAITING,
)
from infersight.collectors.inference.model import Context, Reading, first, histograms, values
from infersight.collectors.inference.servers import _http

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
    "vllm:gpu_cache_usage_perc", "vllm:prompt_tokens_by_source", "vllm:num_requests_waiting_by_reason",
    _http.FAMILY})
# prompt_tokens_by_source sources that were not computed by this engine.
CACHED_SOURCES = frozenset({"local_cache_hit", "external_kv_transfer"})


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
    if not _engine_counts_failures(fam):
        yield from _http.server_errors(families, ctx, _http.model_names(fam, _M))
    # Alternatives per normalised histogram, the most precise first.
    for spec, names in ((DURATION, ("vllm:e2e_request_latency_seconds",)),
                        (TTFT, ("vllm:time_to_first_token_seconds",)),
                        (TPOT, ("vllm:request_time_per_output_token_seconds",
                                "vllm:inter_token_latency_seconds", "vllm:time_per_output_token_seconds")),
                        (QUEUE, ("vllm:request_queue_time_seconds",))):
        fam = first(families, *names)
        if fam is not None:
            yield from histograms(fam, ctx, spec, _M)
    by_source = families.get("vllm:prompt_tokens_by_source")
    for token_type, names in (("input", ("vllm:prompt_tokens",)),
                              ("output", ("vllm:generation_tokens",)),
                              ("cached_input", ("vllm:prompt_tokens_cached", "vllm:prefix_cache_hits",
                                                "vllm:gpu_prefix_cache_hits"))):
        if token_type == "cached_input" and "vllm:prompt_tokens_cached" not in families and by_source is not None:
            yield from (r for r in values(by_source, ctx, TOKENS, _M, {TOKEN_TYPE: token_type})
                        if dict(r.key[1]).get("source") in CACHED_SOURCES)
            continue
        fam = first(families, *names)
        if fam is not None:
            yield from values(fam, ctx, TOKENS, _M, {TOKEN_TYPE: token_type})
    yield from _waiting(families, ctx)
    for spec, names in ((RUNNING, ("vllm:num_requests_running",)),
                        (KV_CACHE, ("vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc"))):
        fam = first(families, *names)
        if fam is not None:
            yield from values(fam, ctx, spec, _M)


def _engine_counts_failures(fam: Metric | None) -> bool:
    """Whether the engine records failed requests itself (an abort/error series above zero)."""
    return fam is not None and any(s.value > 0 and s.labels.get("finished_reason") in BAD_REASONS
                                   for s in fam.samples if not s.name.endswith("_created"))


def _waiting(families: Mapping[str, Metric], ctx: Context) -> Iterable[Reading]:
    """Waiting requests, per reason where vLLM says; the rest of the total is reason `other`."""
    total = families.get("vllm:num_requests_waiting")
    by_reason = families.get("vllm:num_requests_waiting_by_reason")
    if by_reason is None:
        if total is not None:
            yield from values(total, ctx, WAITING, _M)
        return
    covered: dict[tuple, float] = {}
    for r in values(by_reason, ctx, WAITING, _M):
        r.attrs[WAIT_REASON] = dict(r.key[1]).get("reason", "other")
        rest = tuple(sorted((k, v) for k, v in r.key[1] if k != "reason"))
        covered[rest] = covered.get(rest, 0.0) + r.value
        yield r
    for r in values(total, ctx, WAITING, _M) if total is not None else ():
        other = r.value - covered.get(r.key[1], 0.0)
        if other > 0 or r.key[1] not in covered:
            r.attrs[WAIT_REASON] = "other"
            r.value = max(other, 0.0)
            yield r
