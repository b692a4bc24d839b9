"""Log rows: `otel_logs`. A record's time falls back to its observed time; ids are optional."""
from __future__ import annotations

from typing import Any

import pyarrow as pa

from infersight.gateway.rows.attrs import MAX_NS, AttrSets, arrow_type, as_string, column, hex_id, resource
from infersight.gateway.rows.part import Result, Rows
from infersight.storage.tables import OTEL_LOGS

_TYPES = {k: arrow_type(t) for k, t in OTEL_LOGS.columns}


def _id_ok(b: bytes, size: int) -> bool:
    return len(b) in (0, size)


class LogRows(Rows):
    """Records of `otel_logs`, one list per column."""

    table = "otel_logs"
    COLUMNS = tuple(_TYPES)

    @property
    def num_rows(self) -> int:
        return len(self.cols["Timestamp"])

    def add(self, r: Any, res: dict[str, Any], sl: Any, scope_attrs: int, sets: AttrSets) -> None:
        c = self.cols
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

    def build(self) -> pa.Table:
        return pa.table({k: column(_TYPES[k], v, self.gen) for k, v in self.cols.items()})


def logs_rows(req: Any, sets: AttrSets) -> Result:
    """Rows for an ExportLogsServiceRequest."""
    sets.maybe_reset()
    out = Result()
    t = LogRows(sets.generation)
    for rl in req.resource_logs:
        res = resource(sets, rl.resource, rl.schema_url)
        for sl in rl.scope_logs:
            scope_attrs = sets.of(sl.scope.attributes)
            for r in sl.log_records:
                if not _id_ok(r.trace_id, 16) or not _id_ok(r.span_id, 8):
                    out.reject(1, "log record: trace_id must be 16 bytes and span_id 8 bytes, or none")
                    continue
                if r.time_unix_nano > MAX_NS or r.observed_time_unix_nano > MAX_NS:
                    out.reject(1, f"log record: timestamps must be at most {MAX_NS} ns (year 2262)")
                    continue
                t.add(r, res, sl, scope_attrs, sets)
    out.add(t)
    return out
