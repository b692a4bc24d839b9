"""HuggingFace TGI: `tgi_` families from the router's Prometheus exporter.

TGI series have no model label: the model comes from the endpoint config or from TGI's
`GET /info` (`model_id`), which the collector reads once. TGI has no TTFT histogram.

Availability: TGI's router counts every failed request itself (`tgi_request_failure{err}`: validation,
overloaded, generation, incomplete_generation — the 4xx, 429 and 5xx it answers), so HTTP status
counters are never read for TGI (`servers/_http.py`): they would count its failures twice. The family
appears only after the first failure (the metrics crate registers on first use); until then every
finished request is good.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping

from prometheus_client.metrics_core import Metric

from infersight.collectors.inference.metrics import (
    DURATION,
    ERROR_TYPE,
    OUTCOME,
    QUEUE,
    REQUESTS,
    RUNNING,
    TOKEN_TYPE,
    TOKENS,
    TPOT,
    WAITING,
)
from infersight.collectors.inference.model import Context, Reading, histograms, values

PREFIX = "tgi_"

# Every family `readings` reads: the collector parses only these lines.
FAMILIES = frozenset({
    "tgi_request_success", "tgi_request_failure", "tgi_request_duration", "tgi_request_mean_time_per_token_duration",
    "tgi_request_queue_duration", "tgi_request_input_length", "tgi_request_generated_tokens",
    "tgi_batch_current_size", "tgi_queue_size"})


def readings(families: Mapping[str, Metric], ctx: Context) -> Iterable[Reading]:
    fam = families.get("tgi_request_success")
    if fam is not None:
        yield from values(fam, ctx, REQUESTS, None, {OUTCOME: "good"})
    fam = families.get("tgi_request_failure")
    if fam is not None:
        for r in values(fam, ctx, REQUESTS, None, {OUTCOME: "bad"}):
            r.attrs[ERROR_TYPE] = dict(r.key[1]).get("err", "failure")
            yield r
    for spec, name in ((DURATION, "tgi_request_duration"),
                       (TPOT, "tgi_request_mean_time_per_token_duration"),
                       (QUEUE, "tgi_request_queue_duration")):
        fam = families.get(name)
        if fam is not None:
            yield from histograms(fam, ctx, spec, None)
    # Token totals are the sums of the per-request token histograms.
    for token_type, name in (("input", "tgi_request_input_length"), ("output", "tgi_request_generated_tokens")):
        fam = families.get(name)
        if fam is not None:
            for h in histograms(fam, ctx, TOKENS, None):
                h.attrs[TOKEN_TYPE] = token_type
                yield Reading(TOKENS, h.key, h.attrs, h.value)
    for spec, name in ((RUNNING, "tgi_batch_current_size"), (WAITING, "tgi_queue_size")):
        fam = families.get(name)
        if fam is not None:
            yield from values(fam, ctx, spec, None)
