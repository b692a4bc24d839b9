"""Exact evaluation of SLO instances from the per-minute rollups.

SLOs are batched by their SLI source's key; each batch is one query (`sli.base` explains the slot
sums) and is folded by that source. A batch that fails is an "error" instance per SLO, never a
resolve. The kinds themselves live in `slo/sli/`: nothing here branches on them.
"""
from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Hashable, Sequence
from typing import Any

from infersight.slo.model import Slo
from infersight.slo.results import EvaluationError, InstanceResult
from infersight.slo.sli import SOURCES
from infersight.slo.sli.base import Reader, slots
from infersight.slo.sli.layout import ROLLUPS, Layout
from infersight.storage.base import StorageError


def point_in_time_instant(at: float) -> int:
    """The instant a point-in-time evaluation at `at` uses: `at` rounded down to the minute."""
    t = math.floor(at)
    return t - t % 60


class Evaluator:
    """Evaluates SLOs at an instant. Stateless: alert state lives in `alerts.AlertTracker`."""

    def __init__(self, storage, layout: Layout = ROLLUPS, settings: dict | None = None) -> None:
        self.storage = storage
        self.layout = layout
        self.settings = settings  # ClickHouse query settings, e.g. {"max_threads": 1}
        self.queries = 0

    @property
    def db(self) -> str:
        return f"`{self.storage.database}`"

    def evaluate(self, slos: Sequence[Slo], now: float, point_in_time: bool = False) -> list[InstanceResult]:
        """One result per SLO and group at `now`; a failed batch gives "error" results for its SLOs.

        Every window is half-open and ends at `now` (`sli.base`). A live evaluation counts the current
        minute with what it holds so far; a `point_in_time` one (`slo status --at T`) is evaluated at T
        rounded down to the minute, since the rollup of T's minute also holds data from after T.
        """
        now_i = point_in_time_instant(now) if point_in_time else math.ceil(now)
        batches: dict[Hashable, list[Slo]] = defaultdict(list)
        for s in slos:
            batches[(s.sli_kind, SOURCES[s.sli_kind].batch_key(s))].append(s)
        read = Reader(self.layout, self.db, self._query)
        out: list[InstanceResult] = []
        for members in batches.values():
            source = SOURCES[members[0].sli_kind]
            starts = slots(members, now_i)
            try:
                out.extend(source.fold(members, source.rows(members, starts, now_i, read), starts, now_i))
            except EvaluationError as err:
                out.extend(InstanceResult(s, (), now_i, state="error", error=str(err)) for s in members)
        return out

    def _query(self, sql: str) -> list[dict[str, Any]]:
        self.queries += 1
        try:
            return self.storage.query(sql, self.settings)
        except StorageError as err:
            raise EvaluationError(f"query failed: {str(err)[:500]}") from None
