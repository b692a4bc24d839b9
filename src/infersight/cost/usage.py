"""What was used in a time window, read from any `Source`: the store, or the server's query API (`cli.cost`).

API traffic comes from GenAI spans (one row per request, so context-length tiers apply per
request); self-hosted traffic from the request rollups; node uptime from `infersight_nodes_1m`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from infersight.rollups import SELF_HOSTED_KINDS, TENANT_ATTRIBUTE
from infersight.storage.literals import string_literal


class Source(Protocol):
    def query(self, sql: str) -> list[dict[str, Any]]: ...


class StoreSource:
    """A `Storage` (embedded chDB or ClickHouse) read directly."""

    def __init__(self, storage: Any) -> None:
        self._storage = storage

    def query(self, sql: str) -> list[dict[str, Any]]:
        return self._storage.query(sql.replace("{db}", f"`{self._storage.database}`"))


@dataclass(frozen=True, slots=True)
class ApiUsage:
    """GenAI spans of one group; `context_tokens` is the smallest input size of its tier band."""

    cloud: str
    region: str
    host: str
    provider: str
    model: str
    tenant: str
    context_tokens: int
    requests: int
    input_tokens: int
    output_tokens: int
    cached_tokens: int


@dataclass(frozen=True, slots=True)
class ServedUsage:
    """Self-hosted traffic of one host/model/tenant from the request rollups."""

    cloud: str
    region: str
    host: str
    kind: str
    model: str
    tenant: str
    requests: int
    input_tokens: int
    output_tokens: int
    cached_tokens: int


@dataclass(frozen=True, slots=True)
class NodeUptime:
    cloud: str
    region: str
    host: str
    host_type: str
    capacity_type: str
    minutes: int


def _window(col: str, start: int, end: int) -> str:
    return f"{col} >= toDateTime({int(start)}) AND {col} < toDateTime({int(end)})"


def api_usage(src: Source, start: int, end: int, thresholds: tuple[int, ...],
              model: str | None = None) -> list[ApiUsage]:
    """With `model`, only its spans: API prices are per model, so its groups are the same as in the full read."""
    inp = "toUInt64OrZero(SpanAttributes['gen_ai.usage.input_tokens'])"
    cached = ("toUInt64OrZero(if(SpanAttributes['gen_ai.usage.cache_read.input_tokens'] != '', "
              "SpanAttributes['gen_ai.usage.cache_read.input_tokens'], "
              "SpanAttributes['gen_ai.usage.cache_read_input_tokens']))")
    band = "0"
    for t in sorted(thresholds):  # the largest threshold ends up outermost
        band = f"if({inp} > {t}, {t + 1}, {band})"
    ten = TENANT_ATTRIBUTE
    only = "" if model is None else f" AND SpanAttributes['gen_ai.request.model'] = {string_literal(model)}"
    rows = src.query(f"""SELECT ResourceAttributes['cloud.provider'] AS cloud,
    ResourceAttributes['cloud.region'] AS region,
    ResourceAttributes['host.name'] AS host,
    if(SpanAttributes['gen_ai.provider.name'] != '', SpanAttributes['gen_ai.provider.name'],
       SpanAttributes['gen_ai.system']) AS provider,
    SpanAttributes['gen_ai.request.model'] AS model,
    if(SpanAttributes['{ten}'] != '', SpanAttributes['{ten}'], ResourceAttributes['{ten}']) AS tenant,
    {band} AS context_tokens,
    count() AS requests, sum({inp}) AS input_tokens,
    sum(toUInt64OrZero(SpanAttributes['gen_ai.usage.output_tokens'])) AS output_tokens, sum({cached}) AS cached_tokens
FROM {{db}}.otel_traces
WHERE SpanAttributes['gen_ai.request.model'] != ''{only} AND {_window('Timestamp', start, end)}
GROUP BY cloud, region, host, provider, model, tenant, context_tokens
ORDER BY cloud, region, host, provider, model, tenant, context_tokens""")
    return [ApiUsage(r["cloud"], r["region"], r["host"], r["provider"], r["model"], r["tenant"],
                     int(r["context_tokens"]), int(r["requests"]), int(r["input_tokens"]),
                     int(r["output_tokens"]), int(r["cached_tokens"])) for r in rows]


def served_usage(src: Source, start: int, end: int) -> list[ServedUsage]:
    kinds = ", ".join(f"'{k}'" for k in SELF_HOSTED_KINDS)
    rows = src.query(f"""SELECT CloudProvider AS cloud, CloudRegion AS region, HostName AS host, ServerKind AS kind,
    Model AS model, Tenant AS tenant, sum(Requests) AS requests, sum(InputTokens) AS input_tokens,
    sum(OutputTokens) AS output_tokens, sum(CachedTokens) AS cached_tokens
FROM {{db}}.infersight_requests_1m
WHERE ServerKind IN ({kinds}) AND {_window('Minute', start, end)}
GROUP BY cloud, region, host, kind, model, tenant
ORDER BY cloud, region, host, kind, model, tenant""")
    return [ServedUsage(r["cloud"], r["region"], r["host"], r["kind"], r["model"], r["tenant"],
                        int(r["requests"]), int(r["input_tokens"]), int(r["output_tokens"]),
                        int(r["cached_tokens"])) for r in rows]


def node_uptime(src: Source, start: int, end: int) -> list[NodeUptime]:
    rows = src.query(f"""SELECT CloudProvider AS cloud, CloudRegion AS region, HostName AS host, HostType AS host_type,
    CapacityType AS capacity_type, uniqExact(Minute) AS minutes
FROM {{db}}.infersight_nodes_1m
WHERE {_window('Minute', start, end)}
GROUP BY cloud, region, host, host_type, capacity_type
ORDER BY cloud, region, host, host_type, capacity_type""")
    return [NodeUptime(r["cloud"], r["region"], r["host"], r["host_type"], r["capacity_type"], int(r["minutes"]))
            for r in rows]
