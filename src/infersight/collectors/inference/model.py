"""The normalised request model every inference server is mapped onto.

Server dialects (`servers/`) turn a parsed exposition into `Reading`s (cumulative, as the server
reports them); `DeltaTracker` turns those into per-scrape deltas so rollup materialized views,
which see one insert block at a time, can simply add them up.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from prometheus_client.metrics_core import Metric
from prometheus_client.samples import Sample

from infersight.collectors.base import AttrValue, MetricSpec
from infersight.collectors.inference.metrics import ADDRESS, MODEL, SERVER_KIND, SERVER_LABELS, TENANT, ServerKind


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
    # Server model name (case-folded) → the name to report: relabelled or case-folded served names.
    model_names: Mapping[str, str] = field(default_factory=dict)
    base: dict[str, AttrValue] = field(init=False)

    def __post_init__(self) -> None:
        self.base = {SERVER_KIND: self.kind, ADDRESS: self.address}
        self.model_names = {k.casefold(): v for k, v in self.model_names.items()}

    def model_of(self, name: str | None) -> str:
        """The reported model for a server's model name: configured `model`, else renamed, else as is."""
        model = self.model or name
        if not model:
            return "unknown"
        return self.model_names.get(model.casefold(), model)

    def attrs(self, labels: Mapping[str, str], model_label: str | None) -> dict[str, AttrValue]:
        """Normalised attributes for a server series: model, kept labels, tenant."""
        out = dict(self.base)
        out[MODEL] = self.model_of(labels.get(model_label) if model_label else None)
        for name in SERVER_LABELS:
            if name in labels:
                out[name] = labels[name]
        tenant = labels.get(self.tenant_label) if self.tenant_label else None
        tenant = tenant or self.tenant
        if tenant:
            out[TENANT] = tenant
        return out


def series_key(family: str, labels: Mapping[str, str]) -> tuple:
    return (family, tuple(sorted(labels.items())))


def histograms(family: Metric, ctx: Context, spec: MetricSpec, model_label: str | None,
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


def values(family: Metric, ctx: Context, spec: MetricSpec, model_label: str | None,
           extra: Mapping[str, AttrValue] | None = None) -> Iterable[Reading]:
    """Counter or gauge series → Readings (the `_created` companion samples are skipped)."""
    for s in family.samples:
        if s.name.endswith("_created"):
            continue
        attrs = ctx.attrs(s.labels, model_label)
        if extra:
            attrs.update(extra)
        yield Reading(spec, series_key(s.name, s.labels), attrs, s.value)


def samples_by_labels(family: Metric) -> dict[tuple, Sample]:
    return {tuple(sorted(s.labels.items())): s for s in family.samples if not s.name.endswith("_created")}


def first(families: Mapping[str, Metric], *names: str) -> Metric | None:
    """The first of several alternative family names present (newer name first)."""
    for n in names:
        if n in families:
            return families[n]
    return None
