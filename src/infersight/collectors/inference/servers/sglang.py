"""SGLang (`--enable-metrics`): `sglang:` families; gauges carry `tp_rank`, kept as is.

Older versions expose no failure counter: every finished request counts as good. Newer ones count
aborted requests (`sglang:num_aborted_requests_total`); an aborted request also finishes, so it is
in `num_requests_total` too: good = finished - aborted of the same series, bad = aborted
(`error.type` = `abort`), never counted twice.

HTTP 5xx (`servers/_http.py`): SGLang answers a failed request with an abort carrying the status
(500 for an internal error), so where `num_aborted_requests` exists the 5xx are already counted.
Only a server older than that counter whose exposition also holds `http_requests_total` (SGLang's
own /metrics does not: it mounts prometheus_client's app without the FastAPI instrumentator; a
deployment may add one) gets its 5xx added as bad, `error.type=http_5xx`.
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
    WAITING,
)
from infersight.collectors.inference.model import Context, Reading, first, histograms, samples_by_labels, values
from infersight.collectors.inference.servers import _http

PREFIX = "sglang:"
_M = "model_name"

# Every family `readings` reads: the collector parses only these lines.
FAMILIES = frozenset({
    "sglang:num_requests", "sglang:num_aborted_requests", "sglang:e2e_request_latency_seconds",
    "sglang:time_to_first_token_seconds",
    "sglang:inter_token_latency_seconds", "sglang:time_per_output_token_seconds", "sglang:queue_time_seconds",
    "sglang:prompt_tokens", "sglang:generation_tokens", "sglang:cached_tokens", "sglang:num_running_reqs",
    "sglang:num_queue_reqs", "sglang:token_usage", _http.FAMILY})


def readings(families: Mapping[str, Metric], ctx: Context) -> Iterable[Reading]:
    fam = families.get("sglang:num_requests")
    aborted = families.get("sglang:num_aborted_requests")
    bad = samples_by_labels(aborted) if aborted is not None else {}
    if fam is not None:
        for r in values(fam, ctx, REQUESTS, _M, {OUTCOME: "good"}):
            b = bad.get(r.key[1])
            if b is not None:
                r.value = max(r.value - b.value, 0.0)
            yield r
    if aborted is not None:
        yield from values(aborted, ctx, REQUESTS, _M, {OUTCOME: "bad", ERROR_TYPE: "abort"})
    else:
        yield from _http.server_errors(families, ctx, _http.model_names(fam, _M))
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
