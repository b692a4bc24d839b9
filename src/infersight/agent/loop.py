"""When to collect and when to export. How to ship is `exporters.otlp`; what survives is `exporters.spool`.

One task per collector runs `collect()` on its interval in a thread, bounded by its timeout;
one export task turns the buffered points into a batch, spools it and drains the spool,
so exports never overlap and the spool has a single owner.
"""
from __future__ import annotations

import asyncio
import dataclasses
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from infersight.agent.selfmetrics import AgentStats
from infersight.collectors.base import Collector, Point
from infersight.config import AgentConfig
from infersight.exporters.otlp import ScopedPoints, Sender, encode, to_metrics_data
from infersight.exporters.spool import DrainReport, Spool

log = logging.getLogger(__name__)
T = TypeVar("T")

SELF_SCOPE = "infersight.agent"
MAX_RETRY_AFTER_SECONDS = 300.0


@dataclass(frozen=True)
class ScheduledCollector:
    name: str
    collector: Collector
    interval_seconds: float
    timeout_seconds: float


def in_daemon_thread(fn: Callable[[], T]) -> asyncio.Future[T]:
    """Run fn in its own daemon thread: a collector that hangs forever must not block agent exit
    (executor threads are joined at interpreter exit, daemon threads are not)."""
    loop = asyncio.get_running_loop()
    fut: asyncio.Future[T] = loop.create_future()

    def settle(result: Any, error: BaseException | None) -> None:
        if fut.done():
            return
        if error is not None:
            fut.set_exception(error)
        else:
            fut.set_result(result)

    def target() -> None:
        try:
            outcome: tuple[Any, BaseException | None] = (fn(), None)
        except BaseException as err:  # noqa: BLE001 (handed to the awaiting task)
            outcome = (None, err)
        try:
            loop.call_soon_threadsafe(settle, *outcome)
        except RuntimeError:  # loop closed: an abandoned call outlived the agent
            pass

    threading.Thread(target=target, daemon=True, name="infersight-worker").start()
    return fut


class Agent:
    def __init__(self, cfg: AgentConfig, collectors: Sequence[ScheduledCollector], sender: Sender, spool: Spool,
                 resource: dict[str, str]) -> None:
        self.cfg = cfg
        self.collectors = tuple(collectors)
        self.sender = sender
        self.spool = spool
        self.resource = dict(resource)
        self.stats = AgentStats()
        self.start_ns = time.time_ns()
        self._buffer: list[ScopedPoints] = []
        self._export_failing = False

    async def run(self, stop: asyncio.Event) -> None:
        """Run until `stop` is set, then export what is buffered (final export) and return."""
        tasks = [asyncio.create_task(self._collect_loop(c, stop), name=f"collect-{c.name}")
                 for c in self.collectors]
        try:
            await self._export_loop(stop)
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            for c in self.collectors:
                try:
                    c.collector.close()
                except Exception:  # noqa: BLE001 (shutdown continues)
                    log.exception("collector %s failed to close", c.name)
            self.sender.close()

    # -- collection ------------------------------------------------------------------------

    async def _collect_loop(self, sc: ScheduledCollector, stop: asyncio.Event) -> None:
        loop = asyncio.get_running_loop()
        running: asyncio.Future[list[Point]] | None = None
        failing = False
        while not stop.is_set():
            started = loop.time()
            if running is not None and not running.done():
                self.stats.collect_errors[(sc.name, "busy")] += 1
                log.debug("collector %s still running from a previous interval; skipped", sc.name)
            else:
                running = in_daemon_thread(lambda: list(sc.collector.collect()))
                error = await self._await_collect(sc, running)
                self.stats.durations[sc.name] = loop.time() - started
                if error is None:
                    if failing:
                        log.info("collector %s recovered", sc.name)
                    failing = False
                elif not failing:  # the first failure of a streak is a warning, the rest debug
                    failing = True
                    log.warning("collector %s: %s", sc.name, error)
                else:
                    log.debug("collector %s: %s", sc.name, error)
            try:
                await asyncio.wait_for(stop.wait(), max(0.0, started + sc.interval_seconds - loop.time()))
            except TimeoutError:
                pass

    async def _await_collect(self, sc: ScheduledCollector, running: asyncio.Future[list[Point]]) -> str | None:
        try:
            points = await asyncio.wait_for(asyncio.shield(running), sc.timeout_seconds)
        except TimeoutError:
            self.stats.collect_errors[(sc.name, "timeout")] += 1
            # Nobody awaits the overrunning call any more; its late outcome is dropped quietly.
            running.add_done_callback(lambda f: f.cancelled() or f.exception())
            return f"collect() exceeded {sc.timeout_seconds} s"
        except Exception as err:  # noqa: BLE001 (a collector never takes the agent down)
            self.stats.collect_errors[(sc.name, "exception")] += 1
            return f"collect() failed: {type(err).__name__}: {err}"
        now = time.time_ns()
        stamped = [p if p.time_ns else dataclasses.replace(p, time_ns=now) for p in points]
        self.stats.collected[sc.name] += len(stamped)
        if stamped:
            self._buffer.append(ScopedPoints(f"infersight.collector.{sc.collector.type}", stamped))
        return None

    # -- export ----------------------------------------------------------------------------

    async def _export_loop(self, stop: asyncio.Event) -> None:
        loop = asyncio.get_running_loop()
        ex = self.cfg.exporter
        next_export = loop.time() + ex.export_interval_seconds
        next_self = loop.time() + self.cfg.self_metrics_interval_seconds
        retry_at: float | None = loop.time() if self.spool.entries() else None  # leftovers from last run
        while not stop.is_set():
            due = min(next_export, retry_at) if retry_at is not None else next_export
            try:
                await asyncio.wait_for(stop.wait(), max(0.0, due - loop.time()))
            except TimeoutError:
                pass
            if stop.is_set():
                break
            now = loop.time()
            if now >= next_self:
                self._add_self_metrics()
                next_self = now + self.cfg.self_metrics_interval_seconds
            if now >= next_export:
                next_export = now + ex.export_interval_seconds
            retry_at = await self._export_once()
        self._add_self_metrics()
        await self._export_once()

    def _add_self_metrics(self) -> None:
        pts = self.stats.points(spool_bytes=self.spool.bytes, spool_batches=len(self.spool.entries()),
                                full_batches=self.spool.dropped_batches, full_points=self.spool.dropped_points)
        self._buffer.append(ScopedPoints(SELF_SCOPE, pts))

    async def _export_once(self) -> float | None:
        """Spool what is buffered and drain; returns when to retry (loop time) or None if drained."""
        batches, self._buffer = self._buffer, []
        lost, report = await in_daemon_thread(lambda: self._spool_and_drain(batches))
        if lost:
            self.stats.export_failures["spool_error"] += 1
            self.stats.unspooled_batches += 1
            self.stats.unspooled_points += lost
        self.stats.exported += report.sent_points
        for entry, reason in report.rejected:
            self.stats.export_failures[reason] += 1
            self.stats.rejected_batches += 1
            self.stats.rejected_points += entry.points
        if report.failure is None:
            if self._export_failing:
                log.info("export recovered; spool drained")
            self._export_failing = False
            return None
        self.stats.export_failures[report.failure.reason] += 1
        delay = self.cfg.exporter.retry_interval_seconds
        if report.failure.retry_after_seconds is not None:
            delay = max(delay, min(report.failure.retry_after_seconds, MAX_RETRY_AFTER_SECONDS))
        # An outage is one warning; each retry during it is debug (the self metrics count them).
        log.log(logging.DEBUG if self._export_failing else logging.WARNING,
                "export failed (%s); %d batches (%d bytes) spooled, retry in %.1f s",
                report.failure.reason, len(self.spool.entries()), self.spool.bytes, delay)
        self._export_failing = True
        return asyncio.get_running_loop().time() + delay

    def _spool_and_drain(self, batches: list[ScopedPoints]) -> tuple[int, DrainReport]:
        """(points that could not be spooled, drain report). A full disk costs this batch, not the agent."""
        npoints, lost = sum(len(b.points) for b in batches), 0
        if npoints:
            try:
                self.spool.put(encode(to_metrics_data(batches, self.resource, self.start_ns)), npoints)
            except Exception as err:  # noqa: BLE001 (disk full, spool dir gone, unencodable value)
                log.error("could not spool a batch of %d points, dropped: %s: %s", npoints, type(err).__name__, err)
                lost = npoints
        return lost, self.spool.drain(self.sender)
