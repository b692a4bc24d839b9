"""OTLP messages → rows of the OTel Collector ClickHouse exporter's tables, one module per signal.

`attrs` formats values and interns attribute sets; `metrics`, `traces` and `logs` turn a decoded
request into a `Result` of `Part`s, one per table, which the writer turns into Arrow (`to_arrow`)
when it flushes. The interface (`Part`, `Result`) is in `part`, which the signal modules import.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from infersight.gateway.rows.attrs import AttrSets, Generation, as_string, go_float, hex_id
from infersight.gateway.rows.logs import LogRows, logs_rows
from infersight.gateway.rows.metrics import MetricRows, metrics_rows
from infersight.gateway.rows.part import Part, Result, to_arrow
from infersight.gateway.rows.traces import TraceRows, traces_rows

ROW_BUILDERS: dict[str, Callable[[Any, AttrSets], Result]] = {
    "metrics": metrics_rows, "traces": traces_rows, "logs": logs_rows}

__all__ = ["ROW_BUILDERS", "AttrSets", "Generation", "LogRows", "MetricRows", "Part", "Result", "TraceRows",
           "as_string", "go_float", "hex_id", "logs_rows", "metrics_rows", "to_arrow", "traces_rows"]
