"""When the spool fsyncs: never for a batch the drain sends right away; always, by the end of the export cycle,
for one that stays (send failed, backlog, set aside, shutdown). A kill -9 needs no fsync (the page cache survives
the process; tests/test_spool_agent.py kills the agent mid-spool), a power loss does."""
from __future__ import annotations

import os
from pathlib import Path

from infersight.agent.loop import Agent, ScheduledCollector
from infersight.config import AgentConfig, ExporterConfig
from infersight.exporters.senders import HttpSender
from infersight.exporters.spool import Spool
from support.agent_thread import run_for
from test_agent_loop import Counting
from test_spool import batch


class Fsyncs:
    """The real fsync, recording which file or directory each call was for."""

    def __init__(self) -> None:
        self.paths: list[Path] = []

    def __call__(self, fd: int) -> None:
        self.paths.append(Path(os.readlink(f"/proc/self/fd/{fd}")))
        os.fsync(fd)


def test_batches_sent_right_away_cost_no_fsync(tmp_path, recorder, sender):
    fsyncs = Fsyncs()
    spool = Spool(tmp_path, 10**6, fsync=fsyncs)
    spool.put(batch(0), 1)
    spool.put(batch(1), 1)
    assert spool.drain(sender).sent_batches == 2
    assert fsyncs.paths == [] and len(recorder.accepted()) == 2


def test_what_the_drain_leaves_is_fsynced_once_with_its_directory(tmp_path, recorder, sender):
    fsyncs = Fsyncs()
    spool = Spool(tmp_path, 10**6, fsync=fsyncs)
    _sent, left, behind = (spool.put(batch(i), 1) for i in range(3))
    recorder.statuses = [200, 503]
    report = spool.drain(sender)
    assert report.sent_batches == 1 and report.failure is not None and report.failure.reason == "http_503"
    assert fsyncs.paths == [left.path.resolve(), behind.path.resolve(), tmp_path.resolve()]
    assert spool.sync() == 0 and len(fsyncs.paths) == 3  # already durable: not again
    later = spool.put(batch(3), 1)
    assert len(fsyncs.paths) == 3
    assert spool.sync() == 1 and fsyncs.paths[3:] == [later.path.resolve(), tmp_path.resolve()]


def test_a_killed_agents_leftovers_are_fsynced_by_the_next_drain(tmp_path, port):
    first = Spool(tmp_path, 10**6)
    left = first.put(batch(0), 1)
    first.close()  # as after a kill -9: written and renamed, never fsynced
    fsyncs = Fsyncs()
    spool = Spool(tmp_path, 10**6, fsync=fsyncs)
    report = spool.drain(HttpSender(f"http://127.0.0.1:{port}", {}, timeout_seconds=1))  # nobody listens
    assert report.failure is not None and report.failure.reason == "connection"
    assert fsyncs.paths == [left.path.resolve(), tmp_path.resolve()]


def test_a_set_aside_batch_is_fsynced_where_it_stays(tmp_path, recorder, sender):
    fsyncs = Fsyncs()
    spool = Spool(tmp_path, 10**6, fsync=fsyncs)
    spool.put(batch(0), 1)
    recorder.statuses = [400]
    assert len(spool.drain(sender).rejected) == 1
    (aside,) = spool.rejected()
    assert fsyncs.paths == [aside.path.resolve(), spool.rejected_dir.resolve()]


def test_agent_leaves_only_fsynced_batches_when_the_receiver_is_down(tmp_path, port):
    """Backing off (nothing drains) and the shutdown spool and fsync at once."""
    fsyncs = Fsyncs()
    ex = ExporterConfig(endpoint=f"http://127.0.0.1:{port}", spool_dir=tmp_path / "spool",
                        export_interval_seconds=0.1, retry_interval_seconds=0.5, timeout_seconds=1)
    agent = Agent(AgentConfig(exporter=ex, self_metrics_interval_seconds=0.2),
                  [ScheduledCollector("ok", Counting(), 0.05, 1)], HttpSender(ex.endpoint, {}, 1),
                  Spool(ex.spool_dir, ex.max_spool_bytes, fsync=fsyncs), {"service.name": "s"})
    run_for(agent, 1.2)
    left = {e.path.resolve() for e in agent.spool.entries()}
    assert len(left) >= 5 and left <= set(fsyncs.paths)
    assert (tmp_path / "spool").resolve() in fsyncs.paths
