"""OTLP messages → Arrow tables in the OTel Collector ClickHouse exporter's columns.

Conventions mirror exporter/clickhouseexporter: attribute values via pcommon `Value.AsString()`
(bools `true`/`false`, doubles in ES6 style, bytes base64, maps and arrays as JSON), ids as lower
hex or '' when all zero, `SpanKind`/`StatusCode` as `Server`/`Error`..., metric timestamps in
seconds (`DateTime`), span/log timestamps in nanoseconds, a log's time falling back to its
observed time, int values widened to Float64.
"""
from __future__ import annotations

import base64
import math
from decimal import Decimal
from typing import Any

import numpy as np
import pyarrow as pa
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

from infersight.gateway.otlp import BadRequest, point_attribute
from infersight.rollups import COUNTED_SUMS, LATENCY_METRICS, MAX_ROLLUP_COUNT

MAP = pa.map_(pa.string(), pa.string())
TS_NS = pa.timestamp("ns", tz="UTC")
NS = 1_000_000_000
MAX_U32 = 2**32 - 1
MAX_NS = 2**63 - 1  # DateTime64(9) and Arrow's timestamp[ns] stop here (year 2262)

SPAN_KIND = ("Unspecified", "Internal", "Server", "Client", "Producer", "Consumer")
STATUS_CODE = ("Unset", "Ok", "Error")


# ---------------------------------------------------------------- attribute values

def go_float(f: float) -> str:
    """strconv-style ES6 number formatting, as pcommon's float64AsString."""
    if math.isnan(f):
        return "json: unsupported value: NaN"
    if math.isinf(f):
        return "json: unsupported value: " + ("+Inf" if f > 0 else "-Inf")
    a = abs(f)
    if a != 0 and (a < 1e-6 or a >= 1e21):
        mant, exp = repr(f).split("e")
        sign = exp[0]
        return f"{mant}e{sign}{exp[1:].lstrip('0') or '0'}"
    s = format(Decimal(repr(f)), "f")
    if "." in s:
        s = s.rstrip("0").rstrip(".")
    return "0" if s == "-0" else s


def _json_str(s: str) -> str:
    out = []
    for ch in s:
        o = ord(ch)
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif ch in "<>&" or o < 0x20 or ch in "\u2028\u2029":
            out.append({"\n": "\\n", "\r": "\\r", "\t": "\\t"}.get(ch, f"\\u{o:04x}"))
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def _json_value(v: AnyValue) -> str:
    """Go encoding/json of pcommon's AsRaw(): sorted keys, no spaces, bytes as base64."""
    kind = v.WhichOneof("value")
    if kind == "string_value":
        return _json_str(v.string_value)
    if kind == "bool_value":
        return "true" if v.bool_value else "false"
    if kind == "int_value":
        return str(v.int_value)
    if kind == "double_value":
        f = v.double_value
        return "null" if math.isnan(f) or math.isinf(f) else go_float(f)
    if kind == "bytes_value":
        return _json_str(base64.b64encode(v.bytes_value).decode())
    if kind == "array_value":
        return "[" + ",".join(_json_value(x) for x in v.array_value.values) + "]"
    if kind == "kvlist_value":
        items = {kv.key: kv.value for kv in v.kvlist_value.values}
        return "{" + ",".join(f"{_json_str(k)}:{_json_value(items[k])}" for k in sorted(items)) + "}"
    return "null"


def as_string(v: AnyValue) -> str:
    """pcommon Value.AsString()."""
    kind = v.WhichOneof("value")
    if kind == "string_value":
        return v.string_value
    if kind is None:
        return ""
    if kind == "bool_value":
        return "true" if v.bool_value else "false"
    if kind == "int_value":
        return str(v.int_value)
    if kind == "double_value":
        return go_float(v.double_value)
    if kind == "bytes_value":
        return base64.b64encode(v.bytes_value).decode()
    return _json_value(v)


def hex_id(b: bytes) -> str:
    return b.hex() if any(b) else ""


class AttrSets:
    """Interns attribute lists (as tuples of serialized KeyValues) → small ints.

    Stringifying is done once per distinct set; the table is reset when it holds more than `limit`
    sets or about `max_bytes` (the serialized attributes plus their strings, counted by `held_bytes`),
    only between requests, never while one is being built: what it holds is bounded by `max_bytes`
    plus one request's attributes (plus generations still referenced by queued rows).
    """

    SET_OVERHEAD_BYTES = 200  # dict entry, tuples and list slots of one set, roughly

    def __init__(self, limit: int = 200_000, max_bytes: int = 64 * 1024 * 1024) -> None:
        self.limit = limit
        self.max_bytes = max_bytes
        self.reset()

    def reset(self) -> None:
        # New objects, not cleared ones: queued tables still resolve ids against the old lists.
        self.ids: dict[tuple[bytes, ...], int] = {(): 0}
        self.keys: list[tuple[str, ...]] = [()]
        self.values: list[tuple[str, ...]] = [()]
        self.held_bytes = 0

    def maybe_reset(self) -> None:
        if len(self.keys) > self.limit or self.held_bytes > self.max_bytes:
            self.reset()

    def intern(self, raw: tuple[bytes, ...], parse: Any = KeyValue.FromString) -> int:
        i = self.ids.get(raw)
        if i is not None:
            return i
        d: dict[str, str] = {}
        for b in raw:
            kv = parse(b)  # DecodeError propagates: a malformed attribute
            d[kv.key] = as_string(kv.value)
        i = len(self.keys)
        self.ids[raw] = i
        self.keys.append(tuple(d))
        self.values.append(tuple(d.values()))
        self.held_bytes += (self.SET_OVERHEAD_BYTES + sum(len(b) for b in raw)
                            + sum(len(k) + len(v) for k, v in d.items()))
        return i

    def of(self, attrs: Any) -> int:
        """Id of a repeated KeyValue field (real message class)."""
        return self.intern(tuple(kv.SerializeToString() for kv in attrs))

    def ids_of_raw(self, raws: Any) -> list[int]:
        """Ids of data points' raw attributes (shadow class), validated as the standard decoder would."""
        get, intern = self.ids.get, self.intern
        return [get(t) or intern(t, point_attribute) for t in raws]

    @property
    def generation(self) -> tuple[list[tuple[str, ...]], list[tuple[str, ...]]]:
        return self.keys, self.values

    def map_array(self, ids: Any) -> pa.Array:
        return map_array(self.generation, ids)


def map_array(gen: tuple[list[tuple[str, ...]], list[tuple[str, ...]]], ids: Any) -> pa.Array:
    """Arrow Map column for a sequence of set ids (built once per distinct set, then take)."""
    ids = np.asarray(ids, dtype=np.int64)
    if len(ids) == 0:
        return pa.array([], MAP)
    set_keys, set_values = gen
    uniq, inverse = np.unique(ids, return_inverse=True)
    keys: list[str] = []
    vals: list[str] = []
    offsets = [0]
    for u in uniq.tolist():
        keys.extend(set_keys[u])
        vals.extend(set_values[u])
        offsets.append(len(keys))
    m = pa.MapArray.from_arrays(pa.array(offsets, pa.int32()), pa.array(keys, pa.string()),
                                pa.array(vals, pa.string()))
    return m.take(pa.array(inverse))


# ---------------------------------------------------------------- table builders

_SCOPE_TYPES = {
    "ResourceAttributes": "map", "ResourceSchemaUrl": pa.string(), "ScopeName": pa.string(),
    "ScopeVersion": pa.string(), "ScopeAttributes": "map", "ScopeDroppedAttrCount": pa.uint32(),
    "ScopeSchemaUrl": pa.string(), "ServiceName": pa.string(), "MetricName": pa.string(),
    "MetricDescription": pa.string(), "MetricUnit": pa.string(),
}
_EXEMPLAR_TYPES = {"Exemplars.FilteredAttributes": "map", "Exemplars.TimeUnix": pa.uint32(),
                   "Exemplars.Value": pa.float64(), "Exemplars.SpanId": pa.string(),
                   "Exemplars.TraceId": pa.string()}

METRIC_TABLES: dict[str, dict[str, Any]] = {
    "otel_metrics_gauge": {"Value": pa.float64(), "Flags": pa.uint32()},
    "otel_metrics_sum": {"Value": pa.float64(), "Flags": pa.uint32(),
                         "AggregationTemporality": pa.int32(), "IsMonotonic": pa.bool_()},
    "otel_metrics_histogram": {
        "Count": pa.uint64(), "Sum": pa.float64(), "BucketCounts": pa.list_(pa.uint64()),
        "ExplicitBounds": pa.list_(pa.float64()), "Flags": pa.uint32(), "Min": pa.float64(),
        "Max": pa.float64(), "AggregationTemporality": pa.int32()},
    "otel_metrics_exponential_histogram": {
        "Count": pa.uint64(), "Sum": pa.float64(), "Scale": pa.int32(), "ZeroCount": pa.uint64(),
        "PositiveOffset": pa.int32(), "PositiveBucketCounts": pa.list_(pa.uint64()),
        "NegativeOffset": pa.int32(), "NegativeBucketCounts": pa.list_(pa.uint64()),
        "Flags": pa.uint32(), "Min": pa.float64(), "Max": pa.float64(),
        "AggregationTemporality": pa.int32()},
    "otel_metrics_summary": {"Count": pa.uint64(), "Sum": pa.float64(),
                             "ValueAtQuantiles.Quantile": pa.list_(pa.float64()),
                             "ValueAtQuantiles.Value": pa.list_(pa.float64()), "Flags": pa.uint32()},
}
_SEGMENT_EXTRA = ("AggregationTemporality", "IsMonotonic")
_NO_EXEMPLARS = ("otel_metrics_summary",)


def _seconds(ns: list[int]) -> pa.Array:
    a = np.asarray(ns, dtype=np.uint64) // NS
    return pa.array(np.minimum(a, MAX_U32).astype(np.uint32))


class MetricRows:
    """Rows of one metric table as Python columns: per-metric constants as segments, per-point
    values as lists. Requests' rows are merged and turned into Arrow once per flush, which keeps the
    fixed cost of Arrow calls off each request."""

    def __init__(self, name: str, gen: Any) -> None:
        self.name = name
        self.gen = gen  # the AttrSets generation its ids refer to
        self.types = METRIC_TABLES[name]
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
            typ = _SCOPE_TYPES.get(k) or self.types[k]
            if typ == "map":
                cols[k] = map_array(self.gen, vals).take(idx)
            elif typ == pa.string():  # dictionary-encoded (unique values): no string copy per row
                enc = pa.array(vals, typ).dictionary_encode()
                cols[k] = pa.DictionaryArray.from_arrays(enc.indices.take(idx), enc.dictionary)
            else:
                cols[k] = pa.array(vals, typ).take(idx)
        cols["Attributes"] = map_array(self.gen, self.attrs)
        cols["StartTimeUnix"] = _seconds(self.start)
        cols["TimeUnix"] = _seconds(self.time)
        for k, vals in self.point.items():
            cols[k] = pa.array(vals, self.types[k])
        if self.name not in _NO_EXEMPLARS:
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


def optional_id(b: bytes, size: int, what: str) -> str:
    """An optional id: empty or all zero is none (''), any other length than `size` is an error."""
    if len(b) not in (0, size):
        raise BadRequest(f"{what} must be {size} bytes or empty, not {len(b)}")
    return hex_id(b)


def _exemplar_columns(per_point: list[Any] | None, n: int, gen: Any) -> dict[str, pa.Array]:
    if per_point is None:
        zero = pa.array(np.zeros(n + 1, dtype=np.int32))
        return {k: pa.ListArray.from_arrays(zero, pa.array([], MAP if t == "map" else t))
                for k, t in _EXEMPLAR_TYPES.items()}
    offsets = [0]
    flat = []
    for exs in per_point:
        flat.extend(exs)
        offsets.append(len(flat))
    fa, ts, vals, span, trace = (list(c) for c in zip(*flat)) if flat else ([], [], [], [], [])
    off = pa.array(offsets, pa.int32())
    return {
        "Exemplars.FilteredAttributes": pa.ListArray.from_arrays(off, map_array(gen, fa)),
        "Exemplars.TimeUnix": pa.ListArray.from_arrays(off, _seconds(ts)),
        "Exemplars.Value": pa.ListArray.from_arrays(off, pa.array(vals, pa.float64())),
        "Exemplars.SpanId": pa.ListArray.from_arrays(off, pa.array(span, pa.string())),
        "Exemplars.TraceId": pa.ListArray.from_arrays(off, pa.array(trace, pa.string())),
    }


_KIND_TABLE = {"gauge": "otel_metrics_gauge", "sum": "otel_metrics_sum",
               "histogram": "otel_metrics_histogram",
               "exponential_histogram": "otel_metrics_exponential_histogram",
               "summary": "otel_metrics_summary"}


class NeedsExemplars(Exception):
    """The request was decoded with the exemplar probe and has exemplars: decode it in full."""


class Result:
    """Tables for one request plus what was rejected (for `partial_success`)."""

    def __init__(self) -> None:
        self.tables: dict[str, pa.Table | MetricRows] = {}
        self.rows = 0
        self.rejected = 0
        self.errors: list[str] = []

    def reject(self, count: int, why: str) -> None:
        self.rejected += count
        if len(self.errors) < 5:
            self.errors.append(why)

    @property
    def message(self) -> str:
        return "; ".join(self.errors)

    def add(self, name: str, part: pa.Table | MetricRows) -> None:
        if part.num_rows:
            self.tables[name] = part
            self.rows += part.num_rows


def _scope_values(sets: AttrSets, res: dict[str, Any], sm: Any, m: Any) -> dict[str, Any]:
    return {**res, "ScopeName": sm.scope.name, "ScopeVersion": sm.scope.version,
            "ScopeAttributes": sets.of(sm.scope.attributes),
            "ScopeDroppedAttrCount": sm.scope.dropped_attributes_count,
            "ScopeSchemaUrl": sm.schema_url, "MetricName": m.name,
            "MetricDescription": m.description, "MetricUnit": m.unit}


def _resource(sets: AttrSets, resource: Any, schema_url: str) -> dict[str, Any]:
    service = ""
    for kv in resource.attributes:
        if kv.key == "service.name":
            service = kv.value.string_value
    return {"ResourceAttributes": sets.of(resource.attributes), "ResourceSchemaUrl": schema_url,
            "ServiceName": service}


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


DELTA = 1  # AggregationTemporality


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


def metrics_rows(req: Any, sets: AttrSets) -> Result:
    """Rows for an ExportMetricsServiceRequest parsed with the shadow class."""
    sets.maybe_reset()
    out = Result()
    tables: dict[str, MetricRows] = {}
    for rm in req.resource_metrics:
        res = _resource(sets, rm.resource, rm.schema_url)
        for sm in rm.scope_metrics:
            for m in sm.metrics:
                kind = m.WhichOneof("data")
                if kind is None:
                    out.reject(1, f"metric {m.name!r} has no data (gauge, sum, histogram, ...)")
                    continue
                data = getattr(m, kind)
                dps = data.data_points
                if not m.name:
                    sets.ids_of_raw([tuple(dp.attributes) for dp in dps])  # still validated
                    out.reject(len(dps), "metric with an empty name")
                    continue
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
                if not len(dps):
                    continue
                name = _KIND_TABLE[kind]
                t = tables.get(name) or tables.setdefault(name, MetricRows(name, sets.generation))
                scope = _scope_values(sets, res, sm, m)
                if kind == "gauge":
                    t.segment(scope, len(dps))
                    _number_points(t, dps, sets)
                elif kind == "sum":
                    t.segment(scope, len(dps), AggregationTemporality=data.aggregation_temporality,
                              IsMonotonic=data.is_monotonic)
                    _number_points(t, dps, sets)
                else:
                    t.segment(scope, len(dps), AggregationTemporality=data.aggregation_temporality) \
                        if kind != "summary" else t.segment(scope, len(dps))
                    _common_points(t, dps, sets)
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
                        p["ValueAtQuantiles.Quantile"].extend(
                            [[q.quantile for q in dp.quantile_values] for dp in dps])
                        p["ValueAtQuantiles.Value"].extend(
                            [[q.value for q in dp.quantile_values] for dp in dps])
    for name, t in tables.items():
        out.add(name, t)
    return out


# ---------------------------------------------------------------- traces and logs

def _id_ok(b: bytes, size: int) -> bool:
    return len(b) in (0, size)


def _span_problem(s: Any) -> str | None:
    """Why a span cannot be stored, or None."""
    if len(s.trace_id) != 16 or len(s.span_id) != 8 or not any(s.trace_id) or not any(s.span_id) \
            or not _id_ok(s.parent_span_id, 8):
        return "trace_id must be 16 and span_id 8 non-zero bytes, parent_span_id 8 or none"
    if any(len(ln.trace_id) != 16 or len(ln.span_id) != 8 or not any(ln.trace_id) or not any(ln.span_id)
           for ln in s.links):
        return "a link's trace_id must be 16 and span_id 8 non-zero bytes"
    if s.start_time_unix_nano > MAX_NS or s.end_time_unix_nano > MAX_NS \
            or any(e.time_unix_nano > MAX_NS for e in s.events):
        return f"timestamps must be at most {MAX_NS} ns (year 2262)"
    return None


def traces_rows(req: Any, sets: AttrSets) -> Result:
    sets.maybe_reset()
    out = Result()
    c: dict[str, list[Any]] = {k: [] for k in (
        "Timestamp", "TraceId", "SpanId", "ParentSpanId", "TraceState", "SpanName", "SpanKind",
        "ServiceName", "ResourceAttributes", "ScopeName", "ScopeVersion", "SpanAttributes",
        "Duration", "StatusCode", "StatusMessage")}
    ev_off, ev_ts, ev_name, ev_attrs = [0], [], [], []
    ln_off, ln_trace, ln_span, ln_state, ln_attrs = [0], [], [], [], []
    for rs in req.resource_spans:
        res = _resource(sets, rs.resource, rs.schema_url)
        for ss in rs.scope_spans:
            for s in ss.spans:
                problem = _span_problem(s)
                if problem:
                    out.reject(1, f"span {s.name!r}: {problem}")
                    continue
                c["Timestamp"].append(s.start_time_unix_nano)
                c["TraceId"].append(hex_id(s.trace_id))
                c["SpanId"].append(hex_id(s.span_id))
                c["ParentSpanId"].append(hex_id(s.parent_span_id))
                c["TraceState"].append(s.trace_state)
                c["SpanName"].append(s.name)
                c["SpanKind"].append(SPAN_KIND[s.kind] if 0 <= s.kind < len(SPAN_KIND) else "")
                c["ServiceName"].append(res["ServiceName"])
                c["ResourceAttributes"].append(res["ResourceAttributes"])
                c["ScopeName"].append(ss.scope.name)
                c["ScopeVersion"].append(ss.scope.version)
                c["SpanAttributes"].append(sets.of(s.attributes))
                c["Duration"].append(max(0, s.end_time_unix_nano - s.start_time_unix_nano))
                code = s.status.code
                c["StatusCode"].append(STATUS_CODE[code] if 0 <= code < len(STATUS_CODE) else "")
                c["StatusMessage"].append(s.status.message)
                for e in s.events:
                    ev_ts.append(e.time_unix_nano)
                    ev_name.append(e.name)
                    ev_attrs.append(sets.of(e.attributes))
                ev_off.append(len(ev_ts))
                for ln in s.links:
                    ln_trace.append(hex_id(ln.trace_id))
                    ln_span.append(hex_id(ln.span_id))
                    ln_state.append(ln.trace_state)
                    ln_attrs.append(sets.of(ln.attributes))
                ln_off.append(len(ln_trace))
    cols: dict[str, pa.Array] = {}
    for k, v in c.items():
        if k in ("ResourceAttributes", "SpanAttributes"):
            cols[k] = sets.map_array(v)
        elif k == "Timestamp":
            cols[k] = pa.array(v, pa.uint64()).cast(pa.int64()).cast(TS_NS)
        elif k == "Duration":
            cols[k] = pa.array(v, pa.uint64())
        else:
            cols[k] = pa.array(v, pa.string())
    eo, lo = pa.array(ev_off, pa.int32()), pa.array(ln_off, pa.int32())
    cols["Events.Timestamp"] = pa.ListArray.from_arrays(
        eo, pa.array(ev_ts, pa.uint64()).cast(pa.int64()).cast(TS_NS))
    cols["Events.Name"] = pa.ListArray.from_arrays(eo, pa.array(ev_name, pa.string()))
    cols["Events.Attributes"] = pa.ListArray.from_arrays(eo, sets.map_array(ev_attrs))
    cols["Links.TraceId"] = pa.ListArray.from_arrays(lo, pa.array(ln_trace, pa.string()))
    cols["Links.SpanId"] = pa.ListArray.from_arrays(lo, pa.array(ln_span, pa.string()))
    cols["Links.TraceState"] = pa.ListArray.from_arrays(lo, pa.array(ln_state, pa.string()))
    cols["Links.Attributes"] = pa.ListArray.from_arrays(lo, sets.map_array(ln_attrs))
    out.add("otel_traces", pa.table(cols))
    return out


def logs_rows(req: Any, sets: AttrSets) -> Result:
    sets.maybe_reset()
    out = Result()
    c: dict[str, list[Any]] = {k: [] for k in (
        "Timestamp", "TraceId", "SpanId", "TraceFlags", "SeverityText", "SeverityNumber",
        "ServiceName", "Body", "ResourceSchemaUrl", "ResourceAttributes", "ScopeSchemaUrl",
        "ScopeName", "ScopeVersion", "ScopeAttributes", "LogAttributes", "EventName")}
    for rl in req.resource_logs:
        res = _resource(sets, rl.resource, rl.schema_url)
        for sl in rl.scope_logs:
            scope_attrs = sets.of(sl.scope.attributes)
            for r in sl.log_records:
                if not _id_ok(r.trace_id, 16) or not _id_ok(r.span_id, 8):
                    out.reject(1, "log record: trace_id must be 16 bytes and span_id 8 bytes, or none")
                    continue
                if r.time_unix_nano > MAX_NS or r.observed_time_unix_nano > MAX_NS:
                    out.reject(1, f"log record: timestamps must be at most {MAX_NS} ns (year 2262)")
                    continue
                c["Timestamp"].append(r.time_unix_nano or r.observed_time_unix_nano)
                c["TraceId"].append(hex_id(r.trace_id))
                c["SpanId"].append(hex_id(r.span_id))
                c["TraceFlags"].append(r.flags & 0xFF)
                c["SeverityText"].append(r.severity_text)
                c["SeverityNumber"].append(r.severity_number & 0xFF)
                c["ServiceName"].append(res["ServiceName"])
                c["Body"].append(as_string(r.body))
                c["ResourceSchemaUrl"].append(res["ResourceSchemaUrl"])
                c["ResourceAttributes"].append(res["ResourceAttributes"])
                c["ScopeSchemaUrl"].append(sl.schema_url)
                c["ScopeName"].append(sl.scope.name)
                c["ScopeVersion"].append(sl.scope.version)
                c["ScopeAttributes"].append(scope_attrs)
                c["LogAttributes"].append(sets.of(r.attributes))
                c["EventName"].append(r.event_name)
    cols: dict[str, pa.Array] = {}
    for k, v in c.items():
        if k in ("ResourceAttributes", "ScopeAttributes", "LogAttributes"):
            cols[k] = sets.map_array(v)
        elif k == "Timestamp":
            cols[k] = pa.array(v, pa.uint64()).cast(pa.int64()).cast(TS_NS)
        elif k in ("TraceFlags", "SeverityNumber"):
            cols[k] = pa.array(v, pa.uint8())
        else:
            cols[k] = pa.array(v, pa.string())
    out.add("otel_logs", pa.table(cols))
    return out


ROW_BUILDERS = {"metrics": metrics_rows, "traces": traces_rows, "logs": logs_rows}


def combine(parts: list[pa.Table | MetricRows]) -> pa.Table:
    """One Arrow table from the parts of one table queued by several requests."""
    tables = [p for p in parts if isinstance(p, pa.Table)]
    merged: dict[int, MetricRows] = {}
    for p in parts:
        if isinstance(p, MetricRows):
            acc = merged.get(id(p.gen[0]))
            if acc is None:
                acc = merged[id(p.gen[0])] = MetricRows(p.name, p.gen)
            acc.merge(p)
    tables += [m.build() for m in merged.values()]
    if len(tables) == 1:
        return tables[0]
    return pa.concat_tables(tables, promote_options="permissive").unify_dictionaries().combine_chunks()
