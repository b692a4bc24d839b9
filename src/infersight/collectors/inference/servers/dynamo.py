"""NVIDIA Dynamo: the OpenAI-compatible frontend's `dynamo_frontend_*` families (label `model`).

`dynamo_frontend_requests_total` counts finished requests by `status` (`success`, `error`; an
`error_type` label, where present, names the error). Token totals are the sums of the per-request
sequence-length histograms unless the `dynamo_frontend_output_tokens_total` counter is exposed.
`inflight_requests` (everything the frontend holds, queued included) becomes `requests.running`.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping

from prometheus_client.metrics_core import Metric

from infersight.collectors.inference.metrics import (
    DURATION,
    ERROR_TYPE,
    OUTCOME,
    REQUESTS,
    RUNNING,
    TOKEN_TYPE,
    TOKENS,
    TPOT,
    TTFT,
    WAITING,
)
from infersight.collectors.inference.model import Context, Reading, histograms, series_key, values

PREFIX = "dynamo_frontend_"
_M = "model"
GOOD_STATUS = frozenset({"success", "ok", "200"})

# Every family `readings` reads: the collector parses only these lines.
FAMILIES = frozenset({
    "dynamo_frontend_requests", "dynamo_frontend_request_duration_seconds",
    "dynamo_frontend_time_to_first_token_seconds", "dynamo_frontend_inter_token_latency_seconds",
    "dynamo_frontend_input_sequence_tokens", "dynamo_frontend_output_sequence_tokens",
    "dynamo_frontend_output_tokens", "dynamo_frontend_inflight_requests", "dynamo_frontend_queued_requests"})


def readings(families: Mapping[str, Metric], ctx: Context) -> Iterable[Reading]:
    fam = families.get("dynamo_frontend_requests")
    if fam is not None:
        for s in fam.samples:
            if s.name.endswith("_created"):
                continue
            status = s.labels.get("status", "success")
            attrs = ctx.attrs(s.labels, _M)
            good = status in GOOD_STATUS
            attrs[OUTCOME] = "good" if good else "bad"
            if not good:
                attrs[ERROR_TYPE] = s.labels.get("error_type") or status
            yield Reading(REQUESTS, series_key(s.name, s.labels), attrs, s.value)
    for spec, name in ((DURATION, "dynamo_frontend_request_duration_seconds"),
                       (TTFT, "dynamo_frontend_time_to_first_token_seconds"),
                       (TPOT, "dynamo_frontend_inter_token_latency_seconds")):
        fam = families.get(name)
        if fam is not None:
            yield from histograms(fam, ctx, spec, _M)
    counter = families.get("dynamo_frontend_output_tokens")
    for token_type, name in (("input", "dynamo_frontend_input_sequence_tokens"),
                             ("output", "dynamo_frontend_output_sequence_tokens")):
        if token_type == "output" and counter is not None:
            yield from values(counter, ctx, TOKENS, _M, {TOKEN_TYPE: "output"})
            continue
        fam = families.get(name)
        if fam is not None:
            for h in histograms(fam, ctx, TOKENS, _M):
                h.attrs[TOKEN_TYPE] = token_type
                yield Reading(TOKENS, h.key, h.attrs, h.value)
    for spec, name in ((RUNNING, "dynamo_frontend_inflight_requests"), (WAITING, "dynamo_frontend_queued_requests")):
        fam = families.get(name)
        if fam is not None:
            yield from values(fam, ctx, spec, _M)
