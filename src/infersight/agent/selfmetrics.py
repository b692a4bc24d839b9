"""The agent's own health, exported like any collector's points (`infersight.agent.*`)."""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from infersight import semconv
from infersight.collectors.base import MetricSpec, Point
from infersight.exporters.spool import Spool

COLLECTED = MetricSpec("infersight.agent.points.collected", "counter", "{point}",
                       "Points returned by collectors", ("collector.name",))
EXPORTED = MetricSpec("infersight.agent.points.exported", "counter", "{point}",
                      "Points the receiver acknowledged")
EXPORT_FAILURES = MetricSpec("infersight.agent.export.failures", "counter", "{failure}",
                             "Failed export attempts by reason (connection, timeout, http_503, ...)", ("reason",))
REJECTED_BATCHES = MetricSpec("infersight.agent.export.rejected_batches", "counter", "{batch}",
                              "Batches the receiver refused for good (http_400, http_500, grpc_INVALID_ARGUMENT, ...), "
                              "set aside in the spool's rejected/ folder", ("reason",))
REJECTED_POINTS = MetricSpec("infersight.agent.export.rejected_points", "counter", "{point}",
                             "Points in refused batches, and partial_success: points the receiver dropped from "
                             "a batch it accepted", ("reason",))
DROPPED_BATCHES = MetricSpec("infersight.agent.spool.dropped_batches", "counter", "{batch}",
                             "Batches deleted: spool_full (oldest dropped), rejected_full (oldest set-aside batch "
                             "dropped), unreadable or spool_error (could not be written)", ("reason",))
DROPPED_POINTS = MetricSpec("infersight.agent.spool.dropped_points", "counter", "{point}",
                            "Points in dropped batches", ("reason",))
SPOOL_SIZE = MetricSpec("infersight.agent.spool.size", "updowncounter", "By", "Bytes waiting in the spool")
SPOOL_BATCHES = MetricSpec("infersight.agent.spool.batches", "updowncounter", "{batch}",
                           "Batches waiting in the spool")
REJECTED_SIZE = MetricSpec("infersight.agent.spool.rejected.size", "updowncounter", "By",
                           "Bytes of refused batches kept in rejected/")
REJECTED_HELD = MetricSpec("infersight.agent.spool.rejected.batches", "updowncounter", "{batch}",
                           "Refused batches kept in rejected/")
COLLECT_DURATION = MetricSpec("infersight.agent.collection.duration", "gauge", "s",
                              "Duration of the collector's last run", ("collector.name",))
COLLECT_ERRORS = MetricSpec(semconv.COLLECTOR_ERRORS, "counter", "{error}",
                            "Collector runs that failed (exception), overran (timeout), were skipped because "
                            "the previous run was still going (busy), or found the collector down: init (could "
                            "not start), nvml_missing, nvml_init, not_running, no_documents, endpoints_down",
                            (semconv.COLLECTOR_NAME, "error.type"))
COLLECTOR_UP = MetricSpec(semconv.COLLECTOR_UP, "gauge", "1",
                          "1 when the collector's last run worked, 0 when it was down (the reason is the "
                          "error.type counted in infersight.agent.collection.errors); one point per run",
                          (semconv.COLLECTOR_NAME, semconv.COLLECTOR_TYPE))

METRICS = (COLLECTOR_UP, COLLECTED, EXPORTED, EXPORT_FAILURES, REJECTED_BATCHES, REJECTED_POINTS, DROPPED_BATCHES,
           DROPPED_POINTS, SPOOL_SIZE, SPOOL_BATCHES, REJECTED_SIZE, REJECTED_HELD, COLLECT_DURATION, COLLECT_ERRORS)


@dataclass
class AgentStats:
    """Cumulative since agent start; the collection counters change under the agent's lock (the scheduling
    threads), the export counters only in the export loop."""

    collected: Counter = field(default_factory=Counter)
    exported: int = 0
    export_failures: Counter = field(default_factory=Counter)
    rejected_batches: Counter = field(default_factory=Counter)
    rejected_points: Counter = field(default_factory=Counter)
    unreadable_batches: int = 0
    unreadable_points: int = 0
    unspooled_batches: int = 0
    unspooled_points: int = 0
    durations: dict[str, float] = field(default_factory=dict)
    collect_errors: Counter = field(default_factory=Counter)

    def points(self, spool: Spool) -> list[Point]:
        out = [COLLECTED.point(n, {"collector.name": c}) for c, n in self.collected.items()]
        out.append(EXPORTED.point(self.exported))
        out += [EXPORT_FAILURES.point(n, {"reason": r}) for r, n in self.export_failures.items()]
        out += [REJECTED_BATCHES.point(n, {"reason": r}) for r, n in self.rejected_batches.items()]
        out += [REJECTED_POINTS.point(n, {"reason": r}) for r, n in self.rejected_points.items()]
        for reason, batches, points in (("spool_full", spool.dropped_batches, spool.dropped_points),
                                        ("rejected_full", spool.evicted_rejected_batches,
                                         spool.evicted_rejected_points),
                                        ("unreadable", self.unreadable_batches, self.unreadable_points),
                                        ("spool_error", self.unspooled_batches, self.unspooled_points)):
            out.append(DROPPED_BATCHES.point(batches, {"reason": reason}))
            out.append(DROPPED_POINTS.point(points, {"reason": reason}))
        out.append(SPOOL_SIZE.point(spool.bytes))
        out.append(SPOOL_BATCHES.point(len(spool.entries())))
        out.append(REJECTED_SIZE.point(spool.rejected_bytes))
        out.append(REJECTED_HELD.point(len(spool.rejected())))
        out += [COLLECT_DURATION.point(d, {"collector.name": c}) for c, d in self.durations.items()]
        out += [COLLECT_ERRORS.point(n, {"collector.name": c, "error.type": e})
                for (c, e), n in self.collect_errors.items()]
        return out
