"""History with past timestamps, through the same path the live agents use.

Each step sets the simulated clock, runs every node's collectors (the real ones, over their
injected sources), stamps the points with the step's time as the agent stamps its own, and ships
them as the agent does: `exporters.encode` (the OTel SDK's OTLP encoder) and `exporters.senders.HttpSender`
(one attempt per batch, an idempotency key each) to the gateway's `/v1/metrics`. API requests go as
spans through the OTel SDK. Nothing is written to the store directly.
"""
from __future__ import annotations

import dataclasses
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from infersight.agent.loop import ScopedPoints
from infersight.collectors.base import Point
from infersight.collectors.inference.metrics import UP as ENDPOINT_UP
from infersight.demo.sources import Clock, SimNode
from infersight.demo.spans import ApiClients
from infersight.exporters.encode import encode, to_metrics_data
from infersight.exporters.senders import Sender

log = logging.getLogger(__name__)

# Points per OTLP request: big enough to keep the per-request cost low, well under the body limit.
MAX_BATCH_POINTS = 40_000


class BackfillError(Exception):
    """The gateway refused a backfill batch; the message carries its answer."""


@dataclass
class BackfillReport:
    steps: int = 0
    points: int = 0
    requests: int = 0
    spans: int = 0
    seconds: float = 0.0


# The last hour is simulated minute by minute (the fastest burn-rate windows, 5 min and 1 h, see it as it
# would have been); everything before it in about COARSE_STEPS steps, hardware at every HW_EVERY-th of them.
FINE_SECONDS = 3600.0
FINE_STEP_SECONDS = 60.0
COARSE_STEPS = 112
HW_EVERY = 4


def schedule(start: float, end: float) -> list[tuple[float, bool]]:
    """The backfill's (time, collect hardware too) steps after `start`, up to `end`."""
    fine_from = max(start, end - FINE_SECONDS)
    out: list[tuple[float, bool]] = []
    if fine_from > start:
        n = max(1, min(COARSE_STEPS, int((fine_from - start) // FINE_STEP_SECONDS)))
        step = (fine_from - start) / n
        out += [(start + step * i, i % HW_EVERY == 0 or i == n) for i in range(1, n + 1)]
    t = fine_from
    while t + FINE_STEP_SECONDS <= end:
        t += FINE_STEP_SECONDS
        out.append((t, True))
    return out


def coarse_step_seconds(history_seconds: float) -> float:
    """The step before the last hour (for the banner)."""
    coarse = max(history_seconds - FINE_SECONDS, 0.0)
    return coarse / max(1, min(COARSE_STEPS, int(coarse // FINE_STEP_SECONDS))) if coarse else FINE_STEP_SECONDS


def minutely_up(points: Sequence[Point], prev: float, t: float) -> list[Point]:
    """Copies of the scrape's `endpoint.up` for every minute of a coarse step before `t`: the agent scrapes at
    least once a minute, and node uptime (the capacity-cost rollup) counts minutes with a scrape."""
    ups = [p for p in points if p.name == ENDPOINT_UP.name and p.time_ns]
    out = []
    minute = t - FINE_STEP_SECONDS
    while minute > prev:
        out += [dataclasses.replace(p, time_ns=int(minute * 1e9)) for p in ups]
        minute -= FINE_STEP_SECONDS
    return out


def stamp(points: Iterable[Point], t_ns: int, origin_ns: int) -> list[Point]:
    """Points as the agent stamps them (`time_ns` when the collector left it unset), with cumulative series
    started no later than the history's origin (a collector started 'now' would otherwise start after them)."""
    out = []
    for p in points:
        start = p.start_time_ns
        if p.kind != "gauge" and p.temporality == "cumulative" and (start is None or start > t_ns):
            start = origin_ns
        out.append(dataclasses.replace(p, time_ns=p.time_ns or t_ns, start_time_ns=start))
    return out


class Uplink:
    """One node's batches, encoded and sent as its agent would."""

    def __init__(self, node: SimNode, sender: Sender, origin_ns: int) -> None:
        self.node = node
        self.sender = sender
        self.origin_ns = origin_ns
        self.resource = node.node.resource()
        self.buffer: list[ScopedPoints] = []
        self.buffered = 0

    def add(self, scope: str, points: list[Point]) -> None:
        if points:
            self.buffer.append(ScopedPoints(scope, points))
            self.buffered += len(points)

    def flush(self) -> int:
        if not self.buffer:
            return 0
        payload = encode(to_metrics_data(self.buffer, self.resource, self.origin_ns))
        result = self.sender.send(payload, uuid.uuid4().hex)
        if result.outcome != "ok" or result.rejected_points:
            raise BackfillError(f"{self.node.node.name}: gateway answered {result.outcome} {result.reason} "
                                f"({result.rejected_points} points dropped): {result.detail}")
        n, self.buffer, self.buffered = self.buffered, [], 0
        return n


def backfill(nodes: Sequence[SimNode], api: ApiClients | None, clock: Clock, sender: Sender, start: float,
             end: float, progress: Callable[[float], None] | None = None,
             cancel: threading.Event | None = None) -> BackfillReport:
    """Simulate `start`..`end` (epoch seconds) on `schedule`; leaves the clock at the last step. `cancel` stops
    it early (what was collected so far is still sent)."""
    began = time.monotonic()
    report = BackfillReport()
    origin_ns = int(start * 1e9)
    uplinks = [Uplink(n, sender, origin_ns) for n in nodes]
    clock.t = start
    for up in uplinks:  # the first scrape only sets each server's baseline, as after an agent start
        for _, c in up.node.collectors:
            c.collect()
    prev = start
    last_progress = began
    for t, hardware in schedule(start, end):
        if cancel is not None and cancel.is_set():
            break
        clock.t = t
        t_ns = int(t * 1e9)
        for up in uplinks:
            for name, c in up.node.collectors:
                if hardware or name == "inference":
                    points = stamp(c.collect(), t_ns, origin_ns)
                    if name == "inference":
                        points += minutely_up(points, prev, t)
                    up.add(f"infersight.collector.{c.type}", points)
            report.requests += up.node.server.last_requests
            if up.buffered >= MAX_BATCH_POINTS:
                report.points += up.flush()
        if api is not None:
            report.spans += api.emit(prev, t)
        prev = t
        report.steps += 1
        if progress is not None and time.monotonic() - last_progress > 5:
            last_progress = time.monotonic()
            progress((t - start) / (end - start))
    for up in uplinks:
        report.points += up.flush()
    if api is not None and not api.flush():
        raise BackfillError("the span exporter did not flush the backfilled spans in time")
    report.seconds = time.monotonic() - began
    return report
