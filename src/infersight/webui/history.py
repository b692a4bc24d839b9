"""The SLO detail's history: one SLO evaluated at many instants from one query per batch.

`slo status --at T` at 24 instants is 24 scans of the whole budget window (a latency SLO over 7 days of
the demo fleet: 4 s). Every SLI source folds per-slot sums (`slo.sli.base`), so one query whose slots
are bounded by every window start of every instant (and by the instants themselves) holds what each
evaluation needs: an instant's slot is a run of the shared slots, its sums and coverage (minutes with
data, first and last of them) are theirs added up, and the source's own `fold` makes the results. They
equal one evaluation per instant (`tests/test_webui_history.py`). An accelerator-health minute can be bad
only to an evaluation that read far enough back (a cumulative XID count risen since a device's previous
minute, read from one minute before its oldest slot): its query counts those minutes apart, once per
instant's read start (`HealthSource.rows_reading_from`). A batch that fails (a threshold that is not a
bucket bound somewhere in the span) is evaluated per instant.
"""
from __future__ import annotations

import bisect
import math
from collections import defaultdict
from collections.abc import Hashable, Sequence
from typing import Any

from infersight.slo.evaluator import Evaluator, point_in_time_instant
from infersight.slo.model import Slo
from infersight.slo.results import EvaluationError, InstanceResult
from infersight.slo.sli import SOURCES
from infersight.slo.sli.base import Reader, Rows, slots, value
from infersight.slo.sli.health import HealthSource, read_from
from infersight.storage.base import StorageError

# SLI kinds whose rows are sums per slot and nothing else (accelerator health: see the module docstring).
ADDITIVE = frozenset({"ratio", "latency", "cost", "probe_availability", "probe_latency"})
COVERAGE = ("c_n", "c_first", "c_last")


def _measure(column: str) -> bool:
    return column[0] == "m" and column[1:].isdigit()


class Shared:
    """A batch's rows over the shared slots (most recent first; the last ends at the query's end), read once."""

    def __init__(self, rows: Rows, shared: Sequence[int]) -> None:
        self.shared = shared
        names = list(rows[0]) if rows else []
        self.measures = [k for k in names if _measure(k)]
        self.keys = [k for k in names if k != "slot" and k not in COVERAGE and not _measure(k)]
        self.rows = [(int(r["slot"]), tuple(r[k] for k in self.keys), [value(r[k]) for k in self.measures],
                      (int(r["c_n"]), float(r["c_first"]), float(r["c_last"])) if "c_n" in r else None)
                     for r in rows]

    def regroup(self, starts: Sequence[int], now: int) -> Rows:
        """The rows as one evaluation's over `starts` ending at `now` would be (every start and `now` must be a
        shared slot's start or the query's end): measures and minutes with data added up, the first and last
        minute with data the min and max over the slots with data."""
        neg = [-s for s in starts]
        # Shared slot -> this evaluation's slot holding it (the one with the greatest start <= its start), or -1.
        slot_of = [bisect.bisect_left(neg, -b) if starts[-1] <= b < now else -1 for b in self.shared]
        merged: dict[tuple, list] = {}
        for shared_slot, key, measures, cov in self.rows:
            slot = slot_of[shared_slot]
            if slot < 0:
                continue
            acc = merged.get((slot, key))
            if acc is None:
                merged[(slot, key)] = [list(measures), cov]
                continue
            acc[0] = [a + b for a, b in zip(acc[0], measures, strict=True)]
            if cov is not None and cov[0] > 0:
                have = acc[1]
                acc[1] = cov if have[0] == 0 else (have[0] + cov[0], min(have[1], cov[1]), max(have[2], cov[2]))
        out = []
        for (slot, key), (measures, cov) in merged.items():
            row: dict[str, Any] = dict(zip(self.keys, key, strict=True))
            row["slot"] = slot
            row.update(zip(self.measures, measures, strict=True))
            if cov is not None:
                row.update(zip(COVERAGE, cov, strict=True))
            out.append(row)
        return out


def series(evaluator: Evaluator, slos: Sequence[Slo], instants: Sequence[int],
           now: float) -> list[list[InstanceResult]]:
    """Per instant, what `evaluator.evaluate(slos, t, point_in_time=True)` answers at each of `instants` but
    the last, and then `evaluator.evaluate(slos, now)` (live); `instants` ascending, the last one is `now`'s."""
    ends = [point_in_time_instant(t) for t in instants[:-1]] + [math.ceil(now)]
    out: list[list[InstanceResult]] = [[] for _ in ends]
    batches: dict[tuple[str, Hashable], list[Slo]] = defaultdict(list)
    for s in slos:
        batches[(s.sli_kind, SOURCES[s.sli_kind].batch_key(s))].append(s)
    for (kind, _), members in batches.items():
        if kind in ADDITIVE or isinstance(SOURCES[kind], HealthSource):
            try:
                for i, results in enumerate(_batch(evaluator, members, ends)):
                    out[i].extend(results)
                continue
            except EvaluationError:
                pass  # evaluated per instant below: the instants whose windows are fine keep their results
        for i, t in enumerate(instants):
            out[i].extend(evaluator.evaluate(members, t if i < len(instants) - 1 else now,
                                             point_in_time=i < len(instants) - 1))
    return out


def _batch(evaluator: Evaluator, members: list[Slo], ends: list[int]) -> list[list[InstanceResult]]:
    source = SOURCES[members[0].sli_kind]
    per_instant = [slots(members, end) for end in ends]
    last = max(ends)
    shared = sorted({s for starts in per_instant for s in starts} | {e for e in ends if e < last}, reverse=True)

    def query(sql: str) -> Rows:
        evaluator.queries += 1
        try:
            return evaluator.storage.query(sql, evaluator.settings)
        except StorageError as err:
            raise EvaluationError(f"query failed: {str(err)[:500]}") from None

    read = Reader(evaluator.layout, evaluator.db, query)
    if not isinstance(source, HealthSource):
        rows = Shared(source.rows(members, shared, last, read), shared)
        return [source.fold(members, rows.regroup(starts, end), starts, end)
                for starts, end in zip(per_instant, ends, strict=True)]
    since = sorted({read_from(starts) for starts in per_instant})
    rows = Shared(source.rows_reading_from(members, shared, last, read, since), shared)
    return [source.fold(members, _reading_from(rows.regroup(starts, end), since.index(read_from(starts))),
                        starts, end)
            for starts, end in zip(per_instant, ends, strict=True)]


def _reading_from(rows: Rows, k: int) -> Rows:
    """Health rows as one evaluation reading from `since[k]` has them: m1 its bad minutes, no more measures."""
    out = []
    for r in rows:
        row = {c: v for c, v in r.items() if not _measure(c)}
        row["m0"], row["m1"] = r["m0"], r["m1"] + r[f"m{2 + k}"]
        out.append(row)
    return out
