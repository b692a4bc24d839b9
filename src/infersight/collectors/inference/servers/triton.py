"""NVIDIA Triton: per-model `nv_inference_*` counters (labels `model`, `version`).

Triton reports latency as cumulative microsecond counters, not histograms: each scrape's
delta of `nv_inference_request_duration_us` / successes is emitted as a histogram with no
bounds (count and sum exact, one +Inf bucket). `nv_inference_first_response_histogram_ms`
(Triton's optional latency histograms) becomes TTFT with bounds converted to seconds.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping

from prometheus_client.metrics_core import Metric

from infersight.collectors.inference.metrics import DURATION, ERROR_TYPE, OUTCOME, QUEUE, REQUESTS, TTFT, WAITING
from infersight.collectors.inference.model import Context, Reading, histograms, samples_by_labels, series_key, values

PREFIX = "nv_inference_"
_M = "model"
_US = 1e-6

# Every family `readings` reads: the collector parses only these lines.
FAMILIES = frozenset({
    "nv_inference_request_success", "nv_inference_request_failure", "nv_inference_request_duration_us",
    "nv_inference_queue_duration_us", "nv_inference_first_response_histogram_ms",
    "nv_inference_pending_request_count"})


def readings(families: Mapping[str, Metric], ctx: Context) -> Iterable[Reading]:
    success = families.get("nv_inference_request_success")
    if success is not None:
        yield from values(success, ctx, REQUESTS, _M, {OUTCOME: "good"})
    fam = families.get("nv_inference_request_failure")
    if fam is not None:
        for r in values(fam, ctx, REQUESTS, _M, {OUTCOME: "bad"}):
            r.attrs[ERROR_TYPE] = dict(r.key[1]).get("reason", "failure")
            yield r
    counts = samples_by_labels(success) if success is not None else {}
    for spec, name in ((DURATION, "nv_inference_request_duration_us"), (QUEUE, "nv_inference_queue_duration_us")):
        fam = families.get(name)
        if fam is None:
            continue
        for labels, s in samples_by_labels(fam).items():
            n = counts[labels].value if labels in counts else 0.0
            yield Reading(spec, series_key(name, s.labels), ctx.attrs(s.labels, _M), s.value * _US,
                          (), (n,), n)
    fam = families.get("nv_inference_first_response_histogram_ms")
    if fam is not None:
        yield from histograms(fam, ctx, TTFT, _M, scale=1e-3)
    fam = families.get("nv_inference_pending_request_count")
    if fam is not None:
        yield from values(fam, ctx, WAITING, _M)
