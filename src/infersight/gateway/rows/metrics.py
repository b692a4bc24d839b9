"""Metric rows: the five `otel_metrics_*` tables, one per point kind.

Per-metric constants (resource, scope, name) are kept as segments and per-point values as lists;
`build` repeats the segments by index. Gauge and sum points arrive as raw bytes (`otlp.MetricsRaw`):
`_Columns` reads the fixed-width fields of all of a request's points with numpy and each distinct
rest of a point (attributes, flags) once; a metric with a point it cannot read so is parsed per point.
Delta points the rollups count must be finite counts in [0, MAX_ROLLUP_COUNT]: others are rejected
here (partial success), never stored.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np
import pyarrow as pa

from infersight.gateway import otlp
from infersight.gateway.rows.attrs import (
    MAP,
    AttrSets,
    Generation,
    arrow_type,
    map_array,
    optional_id,
    resource,
    seconds,
)
from infersight.gateway.rows.part import Result, Rows
from infersight.rollups import COUNTED_SUMS, LATENCY_METRICS, MAX_ROLLUP_COUNT
from infersight.storage import tables

# Per metric (repeated per point by index): resource, scope and the metric's own columns.
_SCOPE = ("ResourceAttributes", "ResourceSchemaUrl", "ScopeName", "ScopeVersion", "ScopeAttributes",
          "ScopeDroppedAttrCount", "ScopeSchemaUrl", "ServiceName", "MetricName", "MetricDescription", "MetricUnit")
_PER_POINT = ("Attributes", "StartTimeUnix", "TimeUnix")  # built apart from the point columns
_GAUGE = tables.OTEL_METRICS_GAUGE.types
_SCOPE_TYPES = {k: arrow_type(_GAUGE[k]) for k in _SCOPE}
_EXEMPLAR_TYPES = {k: arrow_type(t).value_type for k, t in _GAUGE.items() if k.startswith("Exemplars.")}
# Per table: the Arrow types of its point columns (and of AggregationTemporality/IsMonotonic).
METRIC_TABLES: dict[str, dict[str, pa.DataType]] = {
    t.name: {k: arrow_type(typ) for k, typ in t.columns
             if k not in _SCOPE and k not in _PER_POINT and not k.startswith("Exemplars.")}
    for t in tables.METRIC_TABLES}
_SEGMENT_EXTRA = ("AggregationTemporality", "IsMonotonic")
_NO_EXEMPLARS = ("otel_metrics_summary",)
_KIND_TABLE = {"gauge": "otel_metrics_gauge", "sum": "otel_metrics_sum",
               "histogram": "otel_metrics_histogram",
               "exponential_histogram": "otel_metrics_exponential_histogram",
               "summary": "otel_metrics_summary"}
DELTA = 1  # AggregationTemporality


class MetricRows(Rows):
    """Rows of one metric table: segments per metric, lists per point, exemplars when any."""

    def __init__(self, table: str, gen: Generation) -> None:
        super().__init__(gen)
        self.table = table
        self.types = METRIC_TABLES[table]
        self.seg: dict[str, list[Any]] = {k: [] for k in _SCOPE_TYPES}
        for k in _SEGMENT_EXTRA:
            if k in self.types:
                self.seg[k] = []
        self.counts: list[int] = []
        self.point: dict[str, list[Any]] = {k: [] for k in self.types if k not in self.seg}
        self.attrs: list[int] = []
        self.start: list[int] = []
        self.time: list[int] = []
        self.exemplars: list[Any] = []  # per point: list of exemplar tuples, when any
        self.any_exemplars = False

    @property
    def num_rows(self) -> int:
        return len(self.time)

    def empty(self) -> MetricRows:
        return MetricRows(self.table, self.gen)

    def merge(self, other: MetricRows) -> None:
        if other.any_exemplars and not self.any_exemplars:
            self.exemplars = [[]] * self.num_rows
            self.any_exemplars = True
        for k, v in other.seg.items():
            self.seg[k].extend(v)
        self.counts.extend(other.counts)
        for k, v in other.point.items():
            self.point[k].extend(v)
        self.attrs.extend(other.attrs)
        self.start.extend(other.start)
        self.time.extend(other.time)
        if self.any_exemplars:
            self.exemplars.extend(other.exemplars if other.any_exemplars else [[]] * other.num_rows)

    def segment(self, scope_vals: dict[str, Any], count: int, **extra: Any) -> None:
        for k, v in scope_vals.items():
            self.seg[k].append(v)
        for k, v in extra.items():
            self.seg[k].append(v)
        self.counts.append(count)

    def build(self) -> pa.Table:
        idx = pa.array(np.repeat(np.arange(len(self.counts), dtype=np.int32), self.counts))
        cols: dict[str, pa.Array] = {}
        for k, vals in self.seg.items():
            typ = _SCOPE_TYPES[k] if k in _SCOPE_TYPES else self.types[k]
            if typ == MAP:
                cols[k] = map_array(self.gen, vals).take(idx)
            elif typ == pa.string():  # dictionary-encoded (unique values): no string copy per row
                enc = pa.array(vals, typ).dictionary_encode()
                cols[k] = pa.DictionaryArray.from_arrays(enc.indices.take(idx), enc.dictionary)
            else:
                cols[k] = pa.array(vals, typ).take(idx)
        cols["Attributes"] = map_array(self.gen, self.attrs)
        cols["StartTimeUnix"] = seconds(self.start)
        cols["TimeUnix"] = seconds(self.time)
        for k, vals in self.point.items():
            cols[k] = pa.array(vals, self.types[k])
        if self.table not in _NO_EXEMPLARS:
            cols.update(_exemplar_columns(self.exemplars if self.any_exemplars else None,
                                          self.num_rows, self.gen))
        return pa.table(cols)

    def add_exemplars(self, per_point: list[Any], sets: AttrSets) -> None:
        """Exemplars become plain tuples now: interning happens on the request's thread only."""
        if not self.any_exemplars:
            if not any(per_point):
                return
            self.exemplars = [[]] * (self.num_rows - len(per_point))
            self.any_exemplars = True
        self.exemplars.extend(
            [[(sets.of(e.filtered_attributes), e.time_unix_nano, e.as_double + e.as_int,
               optional_id(e.span_id, 8, "exemplar span_id"), optional_id(e.trace_id, 16, "exemplar trace_id"))
              for e in exs] for exs in per_point])


def _exemplar_columns(per_point: list[Any] | None, n: int, gen: Generation) -> dict[str, pa.Array]:
    if per_point is None:
        zero = pa.array(np.zeros(n + 1, dtype=np.int32))
        return {k: pa.ListArray.from_arrays(zero, pa.array([], t)) for k, t in _EXEMPLAR_TYPES.items()}
    offsets = [0]
    flat = []
    for exs in per_point:
        flat.extend(exs)
        offsets.append(len(flat))
    fa, ts, vals, span, trace = (list(c) for c in zip(*flat, strict=True)) if flat else ([], [], [], [], [])
    off = pa.array(offsets, pa.int32())
    return {
        "Exemplars.FilteredAttributes": pa.ListArray.from_arrays(off, map_array(gen, fa)),
        "Exemplars.TimeUnix": pa.ListArray.from_arrays(off, seconds(ts)),
        "Exemplars.Value": pa.ListArray.from_arrays(off, pa.array(vals, pa.float64())),
        "Exemplars.SpanId": pa.ListArray.from_arrays(off, pa.array(span, pa.string())),
        "Exemplars.TraceId": pa.ListArray.from_arrays(off, pa.array(trace, pa.string())),
    }


def _scope_values(sets: AttrSets, res: dict[str, Any], sm: Any, m: Any) -> dict[str, Any]:
    return {**res, "ScopeName": sm.scope.name, "ScopeVersion": sm.scope.version,
            "ScopeAttributes": sets.of(sm.scope.attributes),
            "ScopeDroppedAttrCount": sm.scope.dropped_attributes_count,
            "ScopeSchemaUrl": sm.schema_url, "MetricName": m.name,
            "MetricDescription": m.description, "MetricUnit": m.unit}


def _number_points(t: MetricRows, dps: Any, sets: AttrSets) -> None:
    t.attrs.extend(sets.ids_of_raw([tuple(dp.attributes) for dp in dps]))
    t.start.extend([dp.start_time_unix_nano for dp in dps])
    t.time.extend([dp.time_unix_nano for dp in dps])
    # as_double and as_int are a oneof; the unset one reads 0, so the sum is the value.
    t.point["Value"].extend([dp.as_double + dp.as_int for dp in dps])
    t.point["Flags"].extend([dp.flags for dp in dps])
    t.add_exemplars([dp.exemplars for dp in dps], sets)


def _common_points(t: MetricRows, dps: Any, sets: AttrSets) -> None:
    t.attrs.extend(sets.ids_of_raw([tuple(dp.attributes) for dp in dps]))
    t.start.extend([dp.start_time_unix_nano for dp in dps])
    t.time.extend([dp.time_unix_nano for dp in dps])
    p = t.point
    p["Flags"].extend([dp.flags for dp in dps])
    p["Count"].extend([dp.count for dp in dps])
    p["Sum"].extend([dp.sum for dp in dps])
    if "Min" in p:
        p["Min"].extend([dp.min for dp in dps])
        p["Max"].extend([dp.max for dp in dps])
        t.add_exemplars([dp.exemplars for dp in dps], sets)


def _distribution_points(t: MetricRows, kind: str, dps: Any) -> None:
    """The columns only histograms, exponential histograms or summaries have."""
    p = t.point
    if kind == "histogram":
        p["BucketCounts"].extend([list(dp.bucket_counts) for dp in dps])
        p["ExplicitBounds"].extend([list(dp.explicit_bounds) for dp in dps])
    elif kind == "exponential_histogram":
        for dp in dps:
            p["Scale"].append(dp.scale)
            p["ZeroCount"].append(dp.zero_count)
            p["PositiveOffset"].append(dp.positive.offset)
            p["PositiveBucketCounts"].append(list(dp.positive.bucket_counts))
            p["NegativeOffset"].append(dp.negative.offset)
            p["NegativeBucketCounts"].append(list(dp.negative.bucket_counts))
    else:
        p["ValueAtQuantiles.Quantile"].extend([[q.quantile for q in dp.quantile_values] for dp in dps])
        p["ValueAtQuantiles.Value"].extend([[q.value for q in dp.quantile_values] for dp in dps])


def _segment(t: MetricRows, kind: str, data: Any, count: int, scope: dict[str, Any]) -> None:
    if kind == "sum":
        t.segment(scope, count, AggregationTemporality=data.aggregation_temporality, IsMonotonic=data.is_monotonic)
    elif kind in ("gauge", "summary"):
        t.segment(scope, count)
    else:
        t.segment(scope, count, AggregationTemporality=data.aggregation_temporality)


def _add_points(t: MetricRows, kind: str, data: Any, dps: Any, scope: dict[str, Any], sets: AttrSets) -> None:
    _segment(t, kind, data, len(dps), scope)
    if kind in ("gauge", "sum"):
        _number_points(t, dps, sets)
    else:
        _common_points(t, dps, sets)
        _distribution_points(t, kind, dps)


# A gauge or sum point as encoders write it starts with its fixed-width fields in field order:
# start_time_unix_nano (tag 0x11, left out when 0), time_unix_nano (0x19), as_double (0x21) or as_int (0x31).
_WORD = np.arange(1, 9, dtype=np.int64)
_EXEMPLAR_TAG = 0x2A


class _Columns:
    """The points of a request's gauges and sums read together: fixed-width fields by numpy, the rest of
    each point (attributes, flags) looked up once per distinct rest; `ok[i]` False: metric i needs parsing."""

    def __init__(self, groups: list[Any], sets: AttrSets) -> None:
        raws: list[bytes] = [p for g in groups for p in g]
        self.bounds = [0, *np.cumsum(np.fromiter(map(len, groups), np.int64, len(groups))).tolist()]
        n = len(raws)
        lens = np.fromiter(map(len, raws), np.int64, n)
        off = np.zeros(n, np.int64)
        np.cumsum(lens[:-1], out=off[1:])
        buf = np.frombuffer(b"".join(raws) + bytes(27), np.uint8)  # padded: every index below is in range
        has_start = buf[off] == 0x11
        at = off + 9 * has_start  # the time field
        kind = buf[at + 9]
        fixed = at + 18 - off
        good = ((lens >= fixed) & (buf[at] == 0x19) & ((kind == 0x21) | (kind == 0x31))
                & ((lens == fixed) | (buf[off + fixed] != _EXEMPLAR_TAG)))

        def word(pos: Any) -> Any:
            return buf[pos[:, None] + _WORD].view("<u8")[:, 0]

        self.start = np.where(has_start, word(off), 0).tolist()
        self.time = word(at).tolist()
        bits = word(at + 9)
        # as_double + as_int, as the per-point path adds them (-0.0 becomes 0.0, ints become floats).
        self.value = (np.where(kind == 0x31, bits.view(np.int64).astype(np.float64), bits.view(np.float64))
                      + 0.0).tolist()
        known, rest = sets.rests.get, sets.rest
        rests = [r[k:] for r, k in zip(raws, fixed.tolist(), strict=True)]
        codes = [known(r) for r in rests]
        good_list = good.tolist()
        for i, code in enumerate(codes):
            if code is None:  # a rest not seen yet: parsed, validated and cached (or -1: parse the metric)
                code = rest(raws[i], rests[i]) if good_list[i] else None
                codes[i] = -1 if code is None else code
        c = np.array(codes, np.int64)
        bad = (~good) | (c < 0)
        self.ok = (np.add.reduceat(bad, self.bounds[:-1]) == 0).tolist() if n else []
        self.attrs = (c >> 32).tolist()
        self.flags = (c & 0xFFFFFFFF).tolist()

    def add(self, t: MetricRows, i: int) -> None:
        a, b = self.bounds[i], self.bounds[i + 1]
        t.attrs.extend(self.attrs[a:b])
        t.start.extend(self.start[a:b])
        t.time.extend(self.time[a:b])
        t.point["Value"].extend(self.value[a:b])
        t.point["Flags"].extend(self.flags[a:b])


def _count_ok(v: float) -> bool:
    return math.isfinite(v) and 0 <= v <= MAX_ROLLUP_COUNT


def _rollable(out: Result, name: str, kind: str, dps: Any) -> Any:
    """The delta points the rollups can count; the others are rejected, not stored.

    A point that is not a finite count in [0, MAX_ROLLUP_COUNT] (NaN, ±Inf, negative or absurdly
    large) cannot be summed into the UInt64 rollups; storing it would also be ambiguous.
    """
    if kind == "sum" and name in COUNTED_SUMS:
        bad = [i for i, dp in enumerate(dps) if not _count_ok(dp.as_double + dp.as_int)]
        why = f"delta sum {name!r}: value must be a finite count in [0, {MAX_ROLLUP_COUNT}]"
    elif kind == "histogram" and name in LATENCY_METRICS:
        bad = [i for i, dp in enumerate(dps) if not (
            dp.count <= MAX_ROLLUP_COUNT and all(c <= MAX_ROLLUP_COUNT for c in dp.bucket_counts)
            and math.isfinite(dp.sum) and dp.sum >= 0)]
        why = (f"delta histogram {name!r}: count and bucket counts must be <= {MAX_ROLLUP_COUNT}, "
               "sum finite and >= 0")
    else:
        return dps
    if not bad:
        return dps
    out.reject(len(bad), f"{why} ({len(bad)} point(s) rejected)")
    skip = set(bad)
    return [dp for i, dp in enumerate(dps) if i not in skip]


def _readable(m: Any, kind: str | None, data: Any) -> bool:
    """Whether `_Columns` can take the points of `m`: every one is stored (no check needs the points)."""
    return kind in ("gauge", "sum") and bool(m.name) and not (
        kind == "sum" and data.aggregation_temporality == DELTA and m.name in COUNTED_SUMS)


def _storable(out: Result, m: Any, kind: str, data: Any, sets: AttrSets) -> Any:
    """The points of metric `m` that can be stored; the others are rejected (attributes still validated)."""
    dps = data.data_points
    if kind in ("gauge", "sum"):
        dps = otlp.number_points(dps)
    if not m.name:
        sets.ids_of_raw([tuple(dp.attributes) for dp in dps])  # still validated
        out.reject(len(dps), "metric with an empty name")
        return []
    if kind == "histogram":
        bad = [i for i, dp in enumerate(dps)
               if dp.bucket_counts and len(dp.bucket_counts) != len(dp.explicit_bounds) + 1]
        if bad:
            sets.ids_of_raw([tuple(dps[i].attributes) for i in bad])  # still validated
            out.reject(len(bad), f"histogram {m.name!r}: bucket_counts must have "
                                 "len(explicit_bounds)+1 entries")
            keep = set(range(len(dps))) - set(bad)
            dps = [dp for i, dp in enumerate(dps) if i in keep]
    if kind in ("sum", "histogram") and data.aggregation_temporality == DELTA:
        dps = _rollable(out, m.name, kind, dps)
    return dps


def metrics_rows(req: Any, sets: AttrSets) -> Result:
    """Rows for an ExportMetricsServiceRequest parsed with the shadow class."""
    sets.maybe_reset()
    out = Result()
    tables: dict[str, MetricRows] = {}
    metrics = [m for rm in req.resource_metrics for sm in rm.scope_metrics for m in sm.metrics]
    kinds = [m.WhichOneof("data") for m in metrics]
    datas: list[Any] = [getattr(m, k) if k else None for m, k in zip(metrics, kinds, strict=True)]
    readable = [i for i, (m, k, d) in enumerate(zip(metrics, kinds, datas, strict=True))
                if _readable(m, k, d) and len(d.data_points)]
    cols = _Columns([datas[i].data_points for i in readable], sets)
    column_of = dict(zip(readable, range(len(readable)), strict=True))
    i = -1
    for rm in req.resource_metrics:
        res = resource(sets, rm.resource, rm.schema_url)
        for sm in rm.scope_metrics:
            for m in sm.metrics:
                i += 1
                kind, data = kinds[i], datas[i]
                if kind is None:
                    out.reject(1, f"metric {m.name!r} has no data (gauge, sum, histogram, ...)")
                    continue
                name = _KIND_TABLE[kind]
                j = column_of.get(i)
                if j is not None and cols.ok[j]:
                    t = tables.get(name) or tables.setdefault(name, MetricRows(name, sets.generation))
                    _segment(t, kind, data, cols.bounds[j + 1] - cols.bounds[j], _scope_values(sets, res, sm, m))
                    cols.add(t, j)
                    continue
                dps = _storable(out, m, kind, data, sets)
                if not len(dps):
                    continue
                t = tables.get(name) or tables.setdefault(name, MetricRows(name, sets.generation))
                _add_points(t, kind, data, dps, _scope_values(sets, res, sm, m), sets)
    for t in tables.values():
        out.add(t)
    return out
