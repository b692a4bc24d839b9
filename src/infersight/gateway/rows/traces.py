"""Span rows: `otel_traces`, with events and links as Nested columns.

`SpanKind`/`StatusCode` are written as the exporter does (`Server`, `Error`, ...). A span without a
valid 16-byte trace id and 8-byte span id, or with a timestamp past year 2262, is rejected.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa

from infersight.gateway.rows.attrs import MAX_NS, AttrSets, arrow_type, column, hex_id, resource
from infersight.gateway.rows.part import Result, Rows
from infersight.storage.tables import OTEL_TRACES

SPAN_KIND = ("Unspecified", "Internal", "Server", "Client", "Producer", "Consumer")
STATUS_CODE = ("Unset", "Ok", "Error")
_TYPES = {k: arrow_type(t) for k, t in OTEL_TRACES.columns}
# The Nested columns (`Events.*`, `Links.*`) are kept flat, with a count per span under their prefix.
_NESTED = ("Events", "Links")


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


def _offsets(counts: list[int]) -> pa.Array:
    return pa.array(np.concatenate(([0], np.cumsum(counts, dtype=np.int64))).astype(np.int32))


class TraceRows(Rows):
    """Spans of `otel_traces`, one list per column (events and links flattened with per-span counts)."""

    table = "otel_traces"
    COLUMNS = (*_TYPES, *_NESTED)

    @property
    def num_rows(self) -> int:
        return len(self.cols["Timestamp"])

    def add(self, s: Any, res: dict[str, Any], ss: Any, sets: AttrSets) -> None:
        c = self.cols
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
            c["Events.Timestamp"].append(e.time_unix_nano)
            c["Events.Name"].append(e.name)
            c["Events.Attributes"].append(sets.of(e.attributes))
        c["Events"].append(len(s.events))
        for ln in s.links:
            c["Links.TraceId"].append(hex_id(ln.trace_id))
            c["Links.SpanId"].append(hex_id(ln.span_id))
            c["Links.TraceState"].append(ln.trace_state)
            c["Links.Attributes"].append(sets.of(ln.attributes))
        c["Links"].append(len(s.links))

    def build(self) -> pa.Table:
        c, gen = self.cols, self.gen
        offsets = {n: _offsets(c[n]) for n in _NESTED}
        cols: dict[str, pa.Array] = {}
        for k, typ in _TYPES.items():
            nested = offsets.get(k.split(".")[0])
            if nested is None:
                cols[k] = column(typ, c[k], gen)
            else:
                cols[k] = pa.ListArray.from_arrays(nested, column(typ.value_type, c[k], gen))
        return pa.table(cols)


def traces_rows(req: Any, sets: AttrSets) -> Result:
    """Rows for an ExportTraceServiceRequest."""
    sets.maybe_reset()
    out = Result()
    t = TraceRows(sets.generation)
    for rs in req.resource_spans:
        res = resource(sets, rs.resource, rs.schema_url)
        for ss in rs.scope_spans:
            for s in ss.spans:
                problem = _span_problem(s)
                if problem:
                    out.reject(1, f"span {s.name!r}: {problem}")
                    continue
                t.add(s, res, ss, sets)
    out.add(t)
    return out
