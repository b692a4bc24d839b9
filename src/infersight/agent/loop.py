"""When to collect and when to export. What a batch is: `exporters.encode`; how it ships: `exporters.senders`;
what survives: `exporters.spool`.

Plain threads, no asyncio (importing it alone is ~1.4 MB of the agent's RSS, and every wait here is a timer or
one future). One scheduling thread per collector runs `collect()` on its interval in that collector's long-lived
worker thread (no thread start per cycle), bounded by its timeout, and reports `infersight.collector.up` after
each run: 0 when collect raised, overran or was still busy, or the collector's `health()` says it is down (NVML
not initialised, neuron-monitor dead, no endpoint answering), with the reason counted in
`infersight.agent.collection.errors`. A collector that could not
even start is kept as a `Deferred` placeholder that reports up = 0 (reason `init`) and retries the start
with backoff. The export loop (the thread that calls `Agent.run`) turns the buffered points into a batch and has
the export worker spool it and drain the spool, so drains never overlap (only the shutdown spools while a send may
still be in flight).
"""
from __future__ import annotations

import functools
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from infersight import semconv
from infersight.agent.selfmetrics import COLLECTOR_UP, AgentStats
from infersight.collectors.base import Collector, Health, MetricSpec, Point, health_of
from infersight.config import AgentConfig
from infersight.exporters.encode import encode, to_metrics_data
from infersight.exporters.senders import Sender
from infersight.exporters.spool import DrainReport, Spool

log = logging.getLogger(__name__)
T = TypeVar("T")

SELF_SCOPE = "infersight.agent"
MAX_RETRY_AFTER_SECONDS = 300.0


@dataclass(frozen=True, slots=True)
class ScopedPoints:
    """Points from one collector, exported under its own instrumentation scope; `time_ns` is the time of those
    that carry none (when the collection ended: one stamp per batch, not a copy of each point)."""

    scope: str
    points: Sequence[Point]
    time_ns: int | None = None


@dataclass(frozen=True)
class ScheduledCollector:
    name: str
    collector: Collector | Deferred
    interval_seconds: float
    timeout_seconds: float


def _collect_once(c: Collector | Deferred) -> tuple[list[Point], Health]:
    return list(c.collect()), health_of(c)


class Deferred:
    """Stands in for a collector whose start (`from_config`) failed: reports no points, is down with
    reason `init` and the error, and calls `start` again after a backoff that doubles up to its maximum;
    once `start` succeeds it is that collector."""

    def __init__(self, type_name: str, start: Callable[[], Collector], error: str, *,
                 backoff_seconds: tuple[float, float] = (10.0, 300.0),
                 clock: Callable[[], float] = time.monotonic, metrics: Sequence[MetricSpec] = ()) -> None:
        self.type = type_name
        self.metrics = metrics
        self._start = start
        self._error = error
        self._backoff = backoff_seconds
        self._clock = clock
        self._failures = 1
        self._retry_at = clock() + backoff_seconds[0]
        self.inner: Collector | None = None

    @property
    def needs_two_samples(self) -> bool:
        return bool(getattr(self.inner, "needs_two_samples", False))

    def collect(self) -> Iterable[Point]:
        if self.inner is None:
            if self._clock() < self._retry_at:
                return []
            try:
                self.inner = self._start()
            except Exception as err:  # noqa: BLE001 (stays down; tried again later)
                self._error = f"{type(err).__name__}: {err}"
                delay = min(self._backoff[0] * 2 ** self._failures, self._backoff[1])
                self._failures += 1
                self._retry_at = self._clock() + delay
                log.debug("collector %s still cannot start (%s); next try in %g s", self.type, self._error, delay)
                return []
            log.warning("collector %s started after %d failed tries", self.type, self._failures)
        return self.inner.collect()

    def health(self) -> Health:
        if self.inner is None:
            return Health(False, "init", f"could not start: {self._error}")
        return health_of(self.inner)

    def close(self) -> None:
        if self.inner is not None:
            self.inner.close()


class Future(Generic[T]):
    """The outcome of one call run in another thread: what the loop needs of `concurrent.futures.Future` (whose
    import, ~0.1 MB of the agent's RSS, buys executors and cancellation the agent does not use)."""

    def __init__(self) -> None:
        self._done = threading.Event()
        self._lock = threading.Lock()
        self._callbacks: list[Callable[[Future[T]], object]] = []
        self._result: T | None = None
        self._error: BaseException | None = None

    def run(self, fn: Callable[[], T]) -> None:
        try:
            self._result = fn()
        except BaseException as err:  # noqa: BLE001 (handed to whoever waits on the future)
            self._error = err
        with self._lock:
            self._done.set()
            callbacks, self._callbacks = self._callbacks, []
        for cb in callbacks:
            cb(self)

    def done(self) -> bool:
        return self._done.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        return self._done.wait(timeout)

    def add_done_callback(self, cb: Callable[[Future[T]], object]) -> None:
        """`cb(self)` once done: at once (in this thread) if it is, else in the thread that ran the call."""
        with self._lock:
            if not self._done.is_set():
                self._callbacks.append(cb)
                return
        cb(self)

    def exception(self, timeout: float | None = None) -> BaseException | None:
        if not self._done.wait(timeout):
            raise TimeoutError
        return self._error

    def result(self, timeout: float | None = None) -> T:
        if (err := self.exception(timeout)) is not None:
            raise err
        return self._result  # type: ignore[return-value]  # set by run() unless it raised


def in_daemon_thread(fn: Callable[[], T]) -> Future[T]:
    """Run fn in its own daemon thread: a collector that hangs forever must not block agent exit
    (executor threads are joined at interpreter exit, daemon threads are not)."""
    fut: Future[T] = Future()
    threading.Thread(target=fut.run, args=(fn,), daemon=True, name="infersight-worker").start()
    return fut


class Worker:
    """One long-lived daemon thread running calls in turn, for work that never overlaps itself (one collector's
    runs, the export's): no thread start per cycle. A call that hangs holds up only the calls queued behind it;
    its owner sees its future still running (a collector reports `busy`). Only its owner's thread submits."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._calls: queue.SimpleQueue[tuple[Future[Any], Callable[[], Any]] | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None

    def submit(self, fn: Callable[[], T]) -> Future[T]:
        fut: Future[T] = Future()
        if self._thread is None:
            self._thread = threading.Thread(target=self._serve, daemon=True, name=self._name)
            self._thread.start()
        self._calls.put((fut, fn))
        return fut

    def _serve(self) -> None:
        while (call := self._calls.get()) is not None:
            fut, fn = call
            fut.run(fn)

    def close(self) -> None:
        """The thread ends after the calls already queued."""
        if self._thread is not None:
            self._calls.put(None)
            self._thread = None


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
        # The buffer and the collection stats are shared by the scheduling threads and the export loop.
        self._lock = threading.Lock()
        self._buffer: list[ScopedPoints] = []
        self._closed = False  # set at shutdown: a collection that finishes later is dropped
        self._halt = threading.Event()  # `stop`, or the export loop ended by an error
        self._wake = threading.Event()  # set when the export work finishes or the agent halts
        self._export_failing = False
        self._warned_rejections: set[str] = set()
        self._in_flight: Future[tuple[int, DrainReport]] | None = None
        self._backoff_until: float | None = None
        self._problems: dict[str, tuple[str, ...]] = {}
        self._workers: list[Worker] = []
        self._export_worker = self._worker("infersight-export")

    def _worker(self, name: str) -> Worker:
        worker = Worker(name)
        self._workers.append(worker)
        return worker

    def run(self, stop: threading.Event) -> None:
        """Run until `stop` is set, then shut down within `shutdown_timeout_seconds`: stop collecting (a collection
        in flight gets up to half of that time to finish, so its points are exported too), spool what is buffered,
        and drain only for what is left (the rest waits in the spool).

        Only a watcher thread waits on `stop`, so a signal handler may set it from the thread that runs this
        (that thread never holds the event's lock)."""
        threading.Thread(target=self._watch, args=(stop,), daemon=True, name="infersight-stop").start()
        loops = [threading.Thread(target=self._collect_loop, args=(c, self._worker(f"infersight-collect-{c.name}")),
                                  daemon=True, name=f"infersight-schedule-{c.name}") for c in self.collectors]
        for t in loops:
            t.start()
        try:
            self._export_loop()
        finally:
            stopped = self._halt.is_set()  # not set: the export loop raised; do not wait for collections
            self._halt.set()
            now = time.monotonic()
            deadline = now + self.cfg.shutdown_timeout_seconds
            if stopped:  # the loops end by themselves once their collection in flight is done
                for t in loops:
                    t.join(max(0.0, now + self.cfg.shutdown_timeout_seconds / 2 - time.monotonic()))
            with self._lock:
                self._closed = True
            try:
                self._final_export(deadline)
            finally:
                for c in self.collectors:
                    try:
                        c.collector.close()
                    except Exception:
                        log.exception("collector %s failed to close", c.name)
                self.sender.close()
                for w in self._workers:
                    w.close()

    def _watch(self, stop: threading.Event) -> None:
        stop.wait()
        self._halt.set()
        self._wake.set()

    # -- collection ------------------------------------------------------------------------

    def _collect_loop(self, sc: ScheduledCollector, worker: Worker) -> None:
        running: Future[tuple[list[Point], Health]] | None = None
        failing = False
        while not self._halt.is_set():
            started = time.monotonic()
            if running is not None and not running.done():
                with self._lock:
                    self.stats.collect_errors[(sc.name, "busy")] += 1
                    self._report_up(sc, 0)
                log.debug("collector %s still running from a previous interval; skipped", sc.name)
            else:
                running = worker.submit(functools.partial(_collect_once, sc.collector))
                error = self._await_collect(sc, running, started)
                if error is None:
                    if failing:
                        log.info("collector %s recovered", sc.name)
                    failing = False
                elif not failing:  # the first failure of a streak is a warning, the rest debug
                    failing = True
                    log.warning("collector %s: %s", sc.name, error)
                else:
                    log.debug("collector %s: %s", sc.name, error)
            self._halt.wait(max(0.0, started + sc.interval_seconds - time.monotonic()))

    def _await_collect(self, sc: ScheduledCollector, running: Future[tuple[list[Point], Health]],
                       started: float) -> str | None:
        """Book one run's outcome; a run that ends after the shutdown began is dropped. Returns what went wrong."""
        running.wait(sc.timeout_seconds)
        with self._lock:
            if self._closed:
                return None
            self.stats.durations[sc.name] = time.monotonic() - started
            if not running.done():  # nobody waits for the overrunning call any more; its late outcome is dropped
                self.stats.collect_errors[(sc.name, "timeout")] += 1
                self._report_up(sc, 0)
                return f"collect() exceeded {sc.timeout_seconds} s"
            if (err := running.exception()) is not None:  # a collector never takes the agent down
                self.stats.collect_errors[(sc.name, "exception")] += 1
                self._report_up(sc, 0)
                return f"collect() failed: {type(err).__name__}: {err}"
            points, health = running.result()
            now = time.time_ns()
            self.stats.collected[sc.name] += len(points)
            if points:
                self._buffer.append(ScopedPoints(f"infersight.collector.{sc.collector.type}", points, now))
            self._log_problems(sc.name, health.problems)
            if not health.up:
                self.stats.collect_errors[(sc.name, health.reason or "down")] += 1
                self._report_up(sc, 0, now)
                return f"down ({health.reason}): {health.detail}"
            self._report_up(sc, 1, now)
            return None

    def _report_up(self, sc: ScheduledCollector, value: int, now: int | None = None) -> None:
        """`infersight.collector.up` for this run, exported with the agent's own metrics. Caller holds the lock."""
        attrs = {semconv.COLLECTOR_NAME: sc.name, semconv.COLLECTOR_TYPE: sc.collector.type}
        self._buffer.append(ScopedPoints(SELF_SCOPE, [COLLECTOR_UP.point(value, attrs,
                                                                         time_ns=now or time.time_ns())]))

    def _log_problems(self, name: str, problems: tuple[str, ...]) -> None:
        """Each part that goes down is logged once, and once when it answers again."""
        before = self._problems.get(name, ())
        for p in problems:
            if p not in before:
                log.warning("collector %s: %s", name, p)
        if before and not problems:
            log.info("collector %s: every part answers again", name)
        self._problems[name] = problems

    # -- export ----------------------------------------------------------------------------

    def _take(self) -> list[ScopedPoints]:
        with self._lock:
            batches, self._buffer = self._buffer, []
        return batches

    def _export_loop(self) -> None:
        ex = self.cfg.exporter
        now = time.monotonic()
        next_export = now + ex.export_interval_seconds
        next_self = now + self.cfg.self_metrics_interval_seconds
        retry_at: float | None = now if self.spool.entries() else None  # leftovers from last run
        while not self._halt.is_set():
            due = min(next_export, retry_at) if retry_at is not None else next_export
            if self._halt.wait(max(0.0, due - time.monotonic())):
                break
            now = time.monotonic()
            if now >= next_self:
                self._add_self_metrics()
                next_self = now + self.cfg.self_metrics_interval_seconds
            if now >= next_export:
                next_export = now + ex.export_interval_seconds
            if retry_at is None or now >= retry_at:
                retry_at = self._export_once()
            else:  # backing off (retry interval, Retry-After): spool what was collected, send nothing yet
                self._count_unspooled(self._spool(self._take(), sync=True))
        self._backoff_until = retry_at

    def _add_self_metrics(self) -> None:
        with self._lock:
            self._buffer.append(ScopedPoints(SELF_SCOPE, self.stats.points(self.spool)))

    def _export_once(self) -> float | None:
        """Spool what is buffered and drain, for at most one export interval so that a long backlog does not
        keep new points in memory; returns when to go on (monotonic time), or None when drained or stopping."""
        batches = self._take()
        cancel = threading.Event()
        start_before = time.monotonic() + self.cfg.exporter.export_interval_seconds
        self._wake.clear()
        work = self._export_worker.submit(lambda: self._spool_and_drain(batches, start_before, cancel))
        work.add_done_callback(lambda _: self._wake.set())
        while not work.done() and not self._halt.is_set():
            self._wake.wait()
            self._wake.clear()
        if not work.done():
            # Stopping mid-send: no further batch is started; the shutdown waits for this one within its budget.
            cancel.set()
            self._in_flight = work
            return None
        lost, report = work.result()
        self._count_unspooled(lost)
        return self._account(report)

    def _final_export(self, deadline: float) -> None:
        """Spool first, then drain within what is left until `deadline` (monotonic); each step is bounded, so a
        gateway that is down or hangs costs at most the budget, and anything unsent is on disk for the next start."""
        self._add_self_metrics()
        batches = self._take()
        try:
            lost = in_daemon_thread(lambda: self._spool(batches, sync=True)).result(
                max(0.0, deadline - time.monotonic()))
        except TimeoutError:
            log.error("shutdown: spooling the last %d points took over %.1f s; they are lost",
                      sum(len(b.points) for b in batches), self.cfg.shutdown_timeout_seconds)
            return
        self._count_unspooled(lost)
        previous, self._in_flight = self._in_flight, None
        if previous is not None:
            try:
                lost, report = previous.result(max(0.0, deadline - time.monotonic()))
            except TimeoutError:
                log.warning("shutdown: a send still in flight after %.1f s; its batch stays in the spool",
                            self.cfg.shutdown_timeout_seconds)
                return
            self._count_unspooled(lost)
            self._backoff_until = self._account(report)
        left = deadline - time.monotonic()
        if left <= 0 or not self.spool.entries() or (self._backoff_until or 0) > time.monotonic():
            return  # no time, nothing to send, or the receiver asked us to wait: it all goes at the next start
        final = in_daemon_thread(lambda: self.spool.drain(self.sender, deadline=time.monotonic() + left))
        try:
            self._account(final.result(left))
        except TimeoutError:
            log.warning("shutdown: gave up sending after %.1f s; %d batches stay in the spool",
                        self.cfg.shutdown_timeout_seconds, len(self.spool.entries()))

    def _count_unspooled(self, lost: int) -> None:
        if lost:
            self.stats.export_failures["spool_error"] += 1
            self.stats.unspooled_batches += 1
            self.stats.unspooled_points += lost

    def _account(self, report: DrainReport) -> float | None:
        """Count what a drain did and log it; returns when to drain again (monotonic) or None if drained."""
        self.stats.exported += report.sent_points
        for entry in report.unreadable:
            self.stats.unreadable_batches += 1
            self.stats.unreadable_points += entry.points
        for entry, result in report.rejected:
            self.stats.export_failures[result.reason] += 1
            self.stats.rejected_batches[result.reason] += 1
            self.stats.rejected_points[result.reason] += entry.points
            # One warning per distinct refusal; the self metrics count every batch.
            log.log(logging.DEBUG if result.reason in self._warned_rejections else logging.WARNING,
                    "receiver refused batch %s (%d points) with %s%s; set aside in %s, the rest goes on",
                    entry.key, entry.points, result.reason, f": {result.detail}" if result.detail else "",
                    self.spool.rejected_dir)
            self._warned_rejections.add(result.reason)
        for entry, result in report.partial:
            self.stats.rejected_points["partial_success"] += result.rejected_points
            log.log(logging.DEBUG if "partial_success" in self._warned_rejections else logging.WARNING,
                    "receiver dropped %d of the %d points in batch %s: %s", result.rejected_points, entry.points,
                    entry.key, result.detail)
            self._warned_rejections.add("partial_success")
        failure = report.failure
        if failure is None:
            if self._export_failing and not report.interrupted:
                log.info("export recovered; spool drained")
                self._export_failing = False
            return time.monotonic() if report.interrupted else None
        self.stats.export_failures[failure.reason] += 1
        ex = self.cfg.exporter
        if failure.outcome == "auth":
            # Loud on every (slow) retry: nothing gets through until someone fixes the credentials.
            delay, level = ex.auth_retry_interval_seconds, logging.WARNING
        else:
            delay = ex.retry_interval_seconds
            if failure.retry_after_seconds is not None:
                delay = max(delay, min(failure.retry_after_seconds, MAX_RETRY_AFTER_SECONDS))
            # An outage is one warning; each retry during it is debug (the self metrics count them).
            level = logging.DEBUG if self._export_failing else logging.WARNING
        log.log(level, "export failed (%s%s); %d batches (%d bytes) spooled, retry in %.1f s",
                failure.reason, f": {failure.detail}" if failure.outcome == "auth" and failure.detail else "",
                len(self.spool.entries()), self.spool.bytes, delay)
        self._export_failing = True
        return time.monotonic() + delay

    def _spool(self, batches: list[ScopedPoints], *, sync: bool = False) -> int:
        """Points that could not be spooled: a full disk costs this batch, not the agent. `sync`: fsync now, for
        a batch no drain follows (backing off, shutdown); otherwise the drain fsyncs what it leaves."""
        npoints = sum(len(b.points) for b in batches)
        if not npoints:
            return 0
        try:
            self.spool.put(encode(to_metrics_data(batches, self.resource, self.start_ns)), npoints)
        except Exception as err:  # noqa: BLE001 (disk full, spool dir gone, unencodable value)
            log.error("could not spool a batch of %d points, dropped: %s: %s", npoints, type(err).__name__, err)
            return npoints
        if sync:
            self.spool.sync()
        return 0

    def _spool_and_drain(self, batches: list[ScopedPoints], start_before: float,
                         cancel: threading.Event) -> tuple[int, DrainReport]:
        return self._spool(batches), self.spool.drain(self.sender, start_before=start_before, cancel=cancel)
