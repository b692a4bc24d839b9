"""The agent loop in-process: intervals, slow/failing collectors, self metrics, final export."""
from __future__ import annotations

import logging
import threading
import time

import psutil
import pytest

from infersight.agent import selfmetrics
from infersight.agent.loop import Agent, ScheduledCollector
from infersight.collectors.base import MetricSpec
from infersight.collectors.host import HostCollector
from infersight.config import AgentConfig, ExporterConfig
from infersight.exporters.senders import HttpSender
from infersight.exporters.spool import Spool
from support.agent_thread import run_for, running
from support.otlp_recorder import Recorder

TICK = MetricSpec("test.tick", "counter", "{tick}", "calls so far")


class Counting:
    """A collector that reports how often it was called."""

    type = "counting"

    def __init__(self):
        self.calls = 0
        self.closed = False

    def collect(self):
        self.calls += 1
        return [TICK.point(self.calls)]

    def close(self):
        self.closed = True


class Failing(Counting):
    type = "failing"

    def collect(self):
        super().collect()
        raise RuntimeError("device went away")


class Hanging(Counting):
    type = "hanging"

    def __init__(self):
        super().__init__()
        self.release = threading.Event()

    def collect(self):
        super().collect()
        self.release.wait(30)
        return []


@pytest.fixture
def recorder(port):
    r = Recorder(port).start()
    yield r
    r.stop()


def make_agent(recorder, tmp_path, collectors, export_interval=0.2, self_interval=0.2) -> Agent:
    ex = ExporterConfig(endpoint=recorder.url, spool_dir=tmp_path / "spool", export_interval_seconds=export_interval,
                        retry_interval_seconds=0.2, timeout_seconds=2)
    cfg = AgentConfig(exporter=ex, self_metrics_interval_seconds=self_interval)
    return Agent(cfg, collectors, HttpSender(ex.endpoint, {}, ex.timeout_seconds),
                 Spool(ex.spool_dir, ex.max_spool_bytes), {"service.name": "svc", "host.name": "h"})


def latest(recorder, name, **attrs):
    values = [dp for r in recorder.accepted() for n, dp in r.points()
              if n == name and all(any(kv.key == k and str(getattr(kv.value, kv.value.WhichOneof("value"))) == str(v)
                                       for kv in dp.attributes) for k, v in attrs.items())]
    return values[-1].as_int if values else None


def test_slow_and_failing_collectors_are_counted_not_fatal(recorder, tmp_path, caplog):
    ok, failing, hanging = Counting(), Failing(), Hanging()
    agent = make_agent(recorder, tmp_path, [ScheduledCollector("ok", ok, 0.1, 1),
                                            ScheduledCollector("failing", failing, 0.1, 1),
                                            ScheduledCollector("hanging", hanging, 0.1, 0.2)])
    with caplog.at_level(logging.DEBUG, logger="infersight.agent.loop"):
        run_for(agent, 1.5)
    hanging.release.set()
    assert ok.calls >= 8 and failing.calls >= 8
    assert hanging.calls == 1  # never started again while the first call is still running
    assert ok.closed and failing.closed and hanging.closed
    errors = agent.stats.collect_errors
    assert errors[("failing", "exception")] == failing.calls
    assert errors[("hanging", "timeout")] == 1 and errors[("hanging", "busy")] >= 3
    # One warning per failure streak; repeats go to debug.
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == ["collector failing: collect() failed: RuntimeError: device went away",
                        "collector hanging: collect() exceeded 0.2 s"]
    # Every tick the collector produced was exported, including those taken after stop (final export).
    ticks = sorted(dp.as_int for r in recorder.accepted() for n, dp in r.points() if n == "test.tick")
    assert ticks == list(range(1, ok.calls + 1))
    assert latest(recorder, "infersight.agent.collection.errors", **{"collector.name": "failing",
                                                                     "error.type": "exception"}) == failing.calls
    assert latest(recorder, "infersight.agent.points.collected", **{"collector.name": "ok"}) == ok.calls
    # Nothing is left behind. (The last spool.size the agent reports is taken before its final batch is spooled
    # and sent, so a send still in flight at stop shows in it.)
    assert not agent.spool.entries()
    assert latest(recorder, "infersight.agent.spool.size") >= 0


class Threads(Counting):
    """Records the thread of each call."""

    type = "threads"

    def __init__(self):
        super().__init__()
        self.threads = set()

    def collect(self):
        self.threads.add(threading.get_native_id())
        return super().collect()


def test_each_collector_runs_on_one_long_lived_thread_and_exports_on_another(recorder, tmp_path):
    """No thread start per cycle: every run of a collector is on its own worker thread, kept for the agent's life,
    and the worker threads end with the agent."""
    a, b = Threads(), Threads()
    before = set(threading.enumerate())
    agent = make_agent(recorder, tmp_path, [ScheduledCollector("a", a, 0.05, 1), ScheduledCollector("b", b, 0.05, 1)],
                       export_interval=0.05)
    run_for(agent, 1.0)
    assert a.calls >= 5 and b.calls >= 5
    assert len(a.threads) == 1 and len(b.threads) == 1 and a.threads != b.threads
    assert threading.get_native_id() not in a.threads | b.threads
    assert any(n == "test.tick" for r in recorder.accepted() for n, _ in r.points())
    deadline = time.monotonic() + 10
    while {t.name for t in set(threading.enumerate()) - before} & {
            "infersight-collect-a", "infersight-collect-b", "infersight-schedule-a", "infersight-schedule-b",
            "infersight-export"}:
        assert time.monotonic() < deadline, "worker threads outlived the agent"
        time.sleep(0.05)


def test_self_metrics_follow_their_published_list(recorder, tmp_path):
    agent = make_agent(recorder, tmp_path, [ScheduledCollector("host", HostCollector(psutil), 0.2, 2)])
    run_for(agent, 0.8)
    specs = {m.name: m for m in selfmetrics.METRICS}
    self_points = [(m, dp) for r in recorder.accepted() for sm in r.request.resource_metrics[0].scope_metrics
                   if sm.scope.name == "infersight.agent" for m in sm.metrics for dp in [m]]
    names = {m.name for m, _ in self_points}
    assert names == set(specs) - {"infersight.agent.export.failures", "infersight.agent.collection.errors",
                                  "infersight.agent.export.rejected_batches", "infersight.agent.export.rejected_points"}
    for m, _ in self_points:
        spec = specs[m.name]
        assert m.unit == spec.unit
        kind = m.WhichOneof("data")
        assert kind == {"gauge": "gauge", "counter": "sum", "updowncounter": "sum"}[spec.kind]
        if kind == "sum":
            assert m.sum.is_monotonic == (spec.kind == "counter")
            for dp in m.sum.data_points:
                assert {kv.key for kv in dp.attributes} <= set(spec.attributes)
    exported = latest(recorder, "infersight.agent.points.exported")
    assert exported > 0
    # Resource attributes ride on every batch.
    for r in recorder.accepted():
        attrs = {kv.key: kv.value.string_value for kv in r.request.resource_metrics[0].resource.attributes}
        assert attrs == {"service.name": "svc", "host.name": "h"}


def test_export_failures_are_counted_by_reason_and_recovered(recorder, tmp_path, caplog):
    recorder.statuses = [503, 503, 400]
    ok = Counting()
    agent = make_agent(recorder, tmp_path, [ScheduledCollector("ok", ok, 0.1, 1)])
    with caplog.at_level(logging.INFO, logger="infersight.agent.loop"):
        run_for(agent, 1.5)
    # One outage, one warning; one for the refusal; the recovery is noted.
    assert [r.getMessage()[:25] for r in caplog.records
            if r.name == "infersight.agent.loop" and r.levelno >= logging.INFO] == [
        "export failed (http_503);", "receiver refused batch " + recorder.received[2].key[:2],
        "export recovered; spool d"]
    assert agent.stats.export_failures == {"http_503": 2, "http_400": 1}
    assert agent.stats.rejected_batches == {"http_400": 1}
    rejected_key = recorder.received[2].key
    # The 503'd batch was re-sent under the same key and accepted; the 400'd one never again.
    assert [r.key for r in recorder.received[:3]] == [recorder.received[0].key] * 3
    assert rejected_key not in {r.key for r in recorder.accepted()}
    assert agent.spool.entries() == []


def test_spool_write_failure_costs_the_batch_not_the_agent(recorder, tmp_path):
    ok = Counting()
    agent = make_agent(recorder, tmp_path, [ScheduledCollector("ok", ok, 0.1, 1)])
    spool_dir = tmp_path / "spool"
    with running(agent):  # raises what the agent raised
        time.sleep(0.5)
        spool_dir.rename(tmp_path / "spool.moved")
        spool_dir.write_text("not a directory")  # writes now fail with NotADirectoryError
        time.sleep(0.5)
        spool_dir.unlink()
        (tmp_path / "spool.moved").rename(spool_dir)
        time.sleep(0.5)
    assert agent.stats.unspooled_batches >= 1
    assert agent.stats.export_failures["spool_error"] == agent.stats.unspooled_batches
    ticks = sorted(dp.as_int for r in recorder.accepted() for n, dp in r.points() if n == "test.tick")
    lost = set(range(1, ok.calls + 1)) - set(ticks)
    assert ticks and lost and max(ticks) == ok.calls  # a gap while the disk failed, then back to normal
    assert latest(recorder, "infersight.agent.spool.dropped_batches", reason="spool_error") >= 1


def test_full_spool_drops_oldest_and_reports_it(port, tmp_path):
    ok = Counting()
    ex = ExporterConfig(endpoint=f"http://127.0.0.1:{port}", spool_dir=tmp_path / "spool", export_interval_seconds=0.1,
                        retry_interval_seconds=0.1, timeout_seconds=1, max_spool_bytes=3000)
    agent = Agent(AgentConfig(exporter=ex, self_metrics_interval_seconds=0.1), [ScheduledCollector("ok", ok, 0.05, 1)],
                  HttpSender(ex.endpoint, {}, 1), Spool(ex.spool_dir, ex.max_spool_bytes), {"service.name": "s"})
    recorder = None
    try:
        with running(agent):
            time.sleep(1.0)  # nobody listens: the spool fills up and overflows
            assert agent.spool.dropped_batches > 0 and agent.spool.bytes <= 3000
            recorder = Recorder(port).start()
            newest = ok.calls

            def ticks() -> set[int]:
                return {dp.as_int for r in recorder.accepted() for n, dp in r.points() if n == "test.tick"}

            # Until what was collected when the receiver came up has arrived (the backlog drains first; on a
            # loaded machine that took over the 0.6 s this test used to sleep).
            deadline = time.monotonic() + 60
            while newest not in ticks() and time.monotonic() < deadline:
                time.sleep(0.05)
    finally:
        if recorder is not None:
            recorder.stop()
    assert 1 not in ticks() and newest in ticks()  # the oldest went, the newest arrived
    reported = latest(recorder, "infersight.agent.spool.dropped_batches", reason="spool_full")
    assert 0 < reported <= agent.spool.dropped_batches
