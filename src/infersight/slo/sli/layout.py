"""Where request and latency SLIs read from: the rollups, or the exporter's raw tables (benchmark baseline)."""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from infersight import semconv as sc
from infersight.rollups import LATENCY_METRICS
from infersight.slo.dimensions import ROLLUP_ATTRIBUTES


@dataclass(frozen=True)
class Layout:
    """Table and column expressions of the request and latency data."""

    requests_table: str
    requests_where: str
    minute: str
    dims: Mapping[str, str]  # attribute -> SQL expression
    requests: str
    bad: str
    input_tokens: str
    output_tokens: str
    cached_tokens: str
    latency_table: str
    latency_minute: str
    latency_dims: Mapping[str, str]
    latency_kind_where: Mapping[str, str]
    bounds: str
    bucket_counts: str
    count: str


ROLLUPS = Layout(
    requests_table="infersight_requests_1m", requests_where="1", minute="Minute",
    dims={a: f"`{c}`" for a, c in ROLLUP_ATTRIBUTES.items()},
    requests="Requests", bad="BadRequests", input_tokens="InputTokens", output_tokens="OutputTokens",
    cached_tokens="CachedTokens",
    latency_table="infersight_latency_1m", latency_minute="Minute",
    latency_dims={a: f"`{c}`" for a, c in ROLLUP_ATTRIBUTES.items()},
    latency_kind_where={k: f"Kind = '{k}'" for k in ("e2e", "ttft", "tpot", "queue")},
    bounds="Bounds", bucket_counts="BucketCounts", count="Count",
)


def _raw_dims() -> dict[str, str]:
    """The rollup views' dimension expressions over the exporter's metric tables."""
    out = {}
    for attr in ROLLUP_ATTRIBUTES:
        where = "ResourceAttributes" if attr.startswith(("cloud.", "host.")) else "Attributes"
        out[attr] = f"{where}['{attr}']"
    t = sc.TENANT
    out[t] = f"if(Attributes['{t}'] != '', Attributes['{t}'], ResourceAttributes['{t}'])"
    return out


# The same SLIs read from the exporter's tables (what the rollups are built from); the benchmark's baseline.
RAW = Layout(
    requests_table="otel_metrics_sum",
    requests_where=f"MetricName = '{sc.INFERENCE_REQUESTS}' AND AggregationTemporality = 1",
    minute="toStartOfMinute(TimeUnix)", dims=_raw_dims(), requests="Value",
    bad=f"if(Attributes['{sc.OUTCOME}'] = 'bad', Value, 0)",
    input_tokens="0", output_tokens="0", cached_tokens="0",
    latency_table="otel_metrics_histogram", latency_minute="toStartOfMinute(TimeUnix)",
    latency_dims=_raw_dims(),
    latency_kind_where={k: f"MetricName = '{n}' AND AggregationTemporality = 1"
                        for n, k in LATENCY_METRICS.items()},
    bounds="ExplicitBounds", bucket_counts="BucketCounts", count="Count",
)
