"""The agent's own health, exported like any collector's points (`infersight.agent.*`)."""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from infersight.collectors.base import MetricSpec, Point

COLLECTED = MetricSpec("infersight.agent.points.collected", "counter", "{point}",
                       "Points returned by collectors", ("collector.name",))
EXPORTED = MetricSpec("infersight.agent.points.exported", "counter", "{point}",
                      "Points the receiver acknowledged")
EXPORT_FAILURES = MetricSpec("infersight.agent.export.failures", "counter", "{failure}",
                             "Failed export attempts by reason (connection, timeout, http_503, ...)", ("reason",))
DROPPED_BATCHES = MetricSpec("infersight.agent.spool.dropped_batches", "counter", "{batch}",
                             "Batches given up: spool_full (oldest dropped), rejected (4xx or unreadable) "
                             "or spool_error (could not be written)", ("reason",))
DROPPED_POINTS = MetricSpec("infersight.agent.spool.dropped_points", "counter", "{point}",
                            "Points in dropped batches", ("reason",))
SPOOL_SIZE = MetricSpec("infersight.agent.spool.size", "updowncounter", "By", "Bytes waiting in the spool")
SPOOL_BATCHES = MetricSpec("infersight.agent.spool.batches", "updowncounter", "{batch}",
                           "Batches waiting in the spool")
COLLECT_DURATION = MetricSpec("infersight.agent.collection.duration", "gauge", "s",
                              "Duration of the collector's last run", ("collector.name",))
COLLECT_ERRORS = MetricSpec("infersight.agent.collection.errors", "counter", "{error}",
                            "Collector runs that failed (exception), overran (timeout) or were skipped "
                            "because the previous run was still going (busy)", ("collector.name", "error.type"))

METRICS = (COLLECTED, EXPORTED, EXPORT_FAILURES, DROPPED_BATCHES, DROPPED_POINTS, SPOOL_SIZE, SPOOL_BATCHES,
           COLLECT_DURATION, COLLECT_ERRORS)


@dataclass
class AgentStats:
    """Cumulative since agent start; only the event-loop thread touches it."""

    collected: Counter = field(default_factory=Counter)
    exported: int = 0
    export_failures: Counter = field(default_factory=Counter)
    rejected_batches: int = 0
    rejected_points: int = 0
    unspooled_batches: int = 0
    unspooled_points: int = 0
    durations: dict[str, float] = field(default_factory=dict)
    collect_errors: Counter = field(default_factory=Counter)

    def points(self, *, spool_bytes: int, spool_batches: int, full_batches: int, full_points: int) -> list[Point]:
        out = [COLLECTED.point(n, {"collector.name": c}) for c, n in self.collected.items()]
        out.append(EXPORTED.point(self.exported))
        out += [EXPORT_FAILURES.point(n, {"reason": r}) for r, n in self.export_failures.items()]
        for reason, batches, points in (("spool_full", full_batches, full_points),
                                        ("rejected", self.rejected_batches, self.rejected_points),
                                        ("spool_error", self.unspooled_batches, self.unspooled_points)):
            out.append(DROPPED_BATCHES.point(batches, {"reason": reason}))
            out.append(DROPPED_POINTS.point(points, {"reason": reason}))
        out.append(SPOOL_SIZE.point(spool_bytes))
        out.append(SPOOL_BATCHES.point(spool_batches))
        out += [COLLECT_DURATION.point(d, {"collector.name": c}) for c, d in self.durations.items()]
        out += [COLLECT_ERRORS.point(n, {"collector.name": c, "error.type": e})
                for (c, e), n in self.collect_errors.items()]
        return out
