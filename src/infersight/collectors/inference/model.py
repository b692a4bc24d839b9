"""The normalised request model every inference server is mapped onto.

Server-specific modules turn a parsed exposition into `Reading`s (cumulative, as the server
reports them); `DeltaTracker` turns those into per-scrape deltas so rollup materialized views,
which see one insert block at a time, can simply add them up.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal

from prometheus_client.samples import Sample

from infersight.collectors.base import AttrValue, MetricSpec

ServerKind = Literal["vllm", "tgi", "triton", "sglang"]
KINDS: tuple[ServerKind, ...] = ("vllm", "tgi", "triton", "sglang")

# Attribute names the collector sets. Tenant is a fixed key the rollups read (docs/ROLLUPS.md).
MODEL = "gen_ai.request.model"
SERVER_KIND = "infersight.server.kind"
ADDRESS = "server.address"
TENANT = "infersight.tenant"
OUTCOME = "infersight.request.outcome"
ERROR_TYPE = "error.type"
TOKEN_TYPE = "gen_ai.token.type"
# Server labels kept as they are: vLLM data-parallel engine, SGLang tensor-parallel rank, Triton model version.
SERVER_LABELS = ("engine", "tp_rank", "version")

_COMMON = (MODEL, SERVER_KIND, ADDRESS, TENANT, *SERVER_LABELS)

REQUESTS = MetricSpec("infersight.inference.requests", "counter", "{request}",
                      "Finished requests by outcome (good/bad) since the previous scrape",
                      (*_COMMON, OUTCOME, ERROR_TYPE))
DURATION = MetricSpec("gen_ai.server.request.duration", "histogram", "s",
                      "End-to-end request latency measured by the server", _COMMON)
TTFT = MetricSpec("gen_ai.server.time_to_first_token", "histogram", "s",
                  "Time to generate the first token", _COMMON)
TPOT = MetricSpec("gen_ai.server.time_per_output_token", "histogram", "s",
                  "Time per output token after the first (inter-token latency)", _COMMON)
QUEUE = MetricSpec("infersight.inference.request.queue_time", "histogram", "s",
                   "Time a request waited before it was scheduled", _COMMON)
TOKENS = MetricSpec("gen_ai.client.token.usage", "counter", "{token}",
                    "Tokens processed since the previous scrape; type input (includes cached), "
                    "output, or cached_input (the cached subset of input)", (*_COMMON, TOKEN_TYPE))
RUNNING = MetricSpec("infersight.inference.requests.running", "gauge", "{request}",
                     "Requests currently executing", _COMMON)
WAITING = MetricSpec("infersight.inference.requests.waiting", "gauge", "{request}",
                     "Requests waiting to be scheduled", _COMMON)
KV_CACHE = MetricSpec("infersight.inference.kv_cache.usage", "gauge", "1",
                      "KV-cache (token pool) usage as a 0-1 ratio", _COMMON)
UP = MetricSpec("infersight.inference.endpoint.up", "gauge", "1",
                "1 when the last scrape of the endpoint succeeded, else 0",
                (SERVER_KIND, ADDRESS, TENANT))

METRICS: tuple[MetricSpec, ...] = (REQUESTS, DURATION, TTFT, TPOT, QUEUE, TOKENS, RUNNING, WAITING, KV_CACHE, UP)


@dataclass(slots=True)
class Reading:
    """One server series mapped onto a normalised metric, with the server's cumulative value.

    For histograms `value` is the sum, `buckets` the per-bucket (non-cumulative) counts with
    len(bounds)+1 entries, and `count` the observation count.
    """

    spec: MetricSpec
    key: tuple
    attrs: dict[str, AttrValue]
    value: float
    bounds: tuple[float, ...] = ()
    buckets: tuple[float, ...] = ()
    count: float = 0.0


@dataclass(slots=True)
class Context:
    """What a server module needs besides the exposition: endpoint identity and tenant rules."""

    kind: ServerKind
    address: str
    model: str | None = None
    tenant: str | None = None
    tenant_label: str | None = None
    base: dict[str, AttrValue] = field(init=False)

    def __post_init__(self) -> None:
        self.base = {SERVER_KIND: self.kind, ADDRESS: self.address}

    def attrs(self, labels: Mapping[str, str], model_label: str | None) -> dict[str, AttrValue]:
        """Normalised attributes for a server series: model, kept labels, tenant."""
        out = dict(self.base)
        model = self.model or (labels.get(model_label) if model_label else None)
        out[MODEL] = model or "unknown"
        for name in SERVER_LABELS:
            if name in labels:
                out[name] = labels[name]
        tenant = labels.get(self.tenant_label) if self.tenant_label else None
        if tenant or self.tenant:
            out[TENANT] = tenant or self.tenant  # type: ignore[assignment]
        return out


def series_key(family: str, labels: Mapping[str, str]) -> tuple:
    return (family, tuple(sorted(labels.items())))


def histograms(family, ctx: Context, spec: MetricSpec, model_label: str | None,
               scale: float = 1.0) -> Iterable[Reading]:
    """Prometheus classic histogram series → Readings; `scale` converts bounds and sum (ms→s: 1e-3)."""
    series: dict[tuple, dict] = {}
    for s in family.samples:
        labels = {k: v for k, v in s.labels.items() if k != "le"}
        key = series_key(family.name, labels)
        entry = series.setdefault(key, {"labels": labels, "le": [], "sum": 0.0, "count": 0.0})
        if s.name.endswith("_bucket"):
            entry["le"].append((float(s.labels["le"]), s.value))
        elif s.name.endswith("_sum"):
            entry["sum"] = s.value
        elif s.name.endswith("_count"):
            entry["count"] = s.value
    for key, e in series.items():
        le = sorted(e["le"])
        if not le or le[-1][0] != float("inf"):
            le.append((float("inf"), e["count"]))
        bounds = tuple(b * scale for b, _ in le[:-1])
        cumulative = [c for _, c in le]
        buckets = tuple(c - p for c, p in zip(cumulative, [0.0, *cumulative[:-1]], strict=True))
        yield Reading(spec, key, ctx.attrs(e["labels"], model_label), e["sum"] * scale,
                      bounds, buckets, e["count"])


def values(family, ctx: Context, spec: MetricSpec, model_label: str | None,
           extra: Mapping[str, AttrValue] | None = None) -> Iterable[Reading]:
    """Counter or gauge series → Readings (the `_created` companion samples are skipped)."""
    for s in family.samples:
        if s.name.endswith("_created"):
            continue
        attrs = ctx.attrs(s.labels, model_label)
        if extra:
            attrs.update(extra)
        yield Reading(spec, series_key(s.name, s.labels), attrs, s.value)


def samples_by_labels(family) -> dict[tuple, Sample]:
    return {tuple(sorted(s.labels.items())): s for s in family.samples if not s.name.endswith("_created")}


def first(families: Mapping[str, object], *names: str):
    """The first of several alternative family names present (newer name first)."""
    for n in names:
        if n in families:
            return families[n]
    return None
