"""Agent export faults: a batch refused for good must not block the node, and SIGTERM must not wait on the gateway.

Real components throughout: a real aiohttp receiver on loopback (or a socket that never answers), the agent
in-process with its real HTTP sender and disk spool, or `infersight agent` as a subprocess.
"""
from __future__ import annotations

import asyncio
import json
import logging
import socket
import time
from collections import Counter
from email.utils import formatdate

import pytest
import yaml
from aiohttp import web
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest

from infersight.agent.loop import Agent, ScheduledCollector
from infersight.collectors.base import MetricSpec
from infersight.config import AgentConfig, ExporterConfig
from infersight.exporters.senders import HttpSender, retry_after
from infersight.exporters.spool import Spool
from support.agent_proc import AgentProc, spool_files, spooled, wait_for, write_config
from support.agent_thread import run_for
from support.otlp_recorder import Received, Recorder

TICK = MetricSpec("test.tick", "counter", "{tick}", "calls so far")


class Ticking:
    """A collector whose n-th call reports the value n, so every point can be accounted for."""

    type = "ticking"

    def __init__(self) -> None:
        self.calls = 0

    def collect(self):
        self.calls += 1
        return [TICK.point(self.calls)]

    def close(self) -> None:
        pass


class Receiver(Recorder):
    """The test receiver, plus: a status chosen per request body, arrival times, and a delay per answer."""

    def __init__(self, port: int) -> None:
        super().__init__(port)
        self.status_for = lambda received: None
        self.times: list[float] = []
        self.delay_seconds = 0.0

    async def _handle(self, request: web.Request) -> web.Response:
        self.times.append(time.monotonic())
        if self.delay_seconds:
            await asyncio.sleep(self.delay_seconds)
        body = await request.read()
        got = Received(dict(request.headers), ExportMetricsServiceRequest.FromString(body), 0)
        with self._lock:
            scripted = self.statuses.pop(0) if self.statuses else None
            got.status = scripted or self.status_for(got) or self.default_status
            self.received.append(got)
        headers = {"Retry-After": self.retry_after} if got.status in (429, 503) and self.retry_after else {}
        return web.Response(status=got.status, text="storage said no" if got.status == 500 else "",
                            headers=headers)


def ticks(received: Received) -> list[int]:
    return [dp.as_int for name, dp in received.points() if name == "test.tick"]


@pytest.fixture
def receiver(port):
    r = Receiver(port).start()
    yield r
    r.stop()


def make_agent(tmp_path, endpoint: str, collectors, self_metrics_interval_seconds=0.3, **exporter) -> Agent:
    ex = ExporterConfig(endpoint=endpoint, spool_dir=tmp_path / "spool", timeout_seconds=2,
                        **{"export_interval_seconds": 0.1, "retry_interval_seconds": 0.1, **exporter})
    cfg = AgentConfig(exporter=ex, self_metrics_interval_seconds=self_metrics_interval_seconds)
    return Agent(cfg, collectors, HttpSender(ex.endpoint, {}, ex.timeout_seconds),
                 Spool(ex.spool_dir, ex.max_spool_bytes, max_rejected_bytes=ex.max_rejected_bytes,
                       max_rejected_batches=ex.max_rejected_batches), {"service.name": "faults"})


def self_metric(receiver, name: str, **attrs) -> int | None:
    values = [dp.as_int for r in receiver.accepted() for n, dp in r.points()
              if n == name and {kv.key: kv.value.string_value for kv in dp.attributes} == attrs]
    return values[-1] if values else None


# -- a batch refused for good ----------------------------------------------------------------------


def test_batch_refused_with_500_is_set_aside_and_the_rest_flow(tmp_path, receiver, caplog):
    """Before: the 500 was retried forever and every later batch queued behind it (0 stored)."""
    receiver.status_for = lambda got: 500 if 3 in ticks(got) else None
    collector = Ticking()
    agent = make_agent(tmp_path, receiver.url, [ScheduledCollector("t", collector, 0.05, 1)])
    with caplog.at_level(logging.DEBUG, logger="infersight"):
        run_for(agent, 2.0)

    refused = [r for r in receiver.received if r.status == 500]
    assert len(refused) == 1, "a permanent refusal is not retried"
    bad_ticks = set(ticks(refused[0]))
    stored = [t for r in receiver.accepted() for t in ticks(r)]
    assert sorted(stored) == sorted(set(range(1, collector.calls + 1)) - bad_ticks), "everything else arrives, once"
    assert len(receiver.accepted()) > 10, "batches kept flowing past the refused one"
    # In order: every batch after the refused one was sent after it.
    later = [r for r in receiver.received if min(ticks(r) or [0]) > max(bad_ticks)]
    assert later and all(receiver.received.index(r) > receiver.received.index(refused[0]) for r in later)

    # Set aside for an operator: same file name (so same idempotency key), a note saying why.
    (aside,) = agent.spool.rejected()
    assert aside.key == refused[0].key and aside.path.parent == tmp_path / "spool" / "rejected"
    note = json.loads(aside.path.with_suffix(".json").read_text())
    assert note["reason"] == "http_500" and note["detail"] == "storage said no" and note["idempotency_key"] == aside.key
    assert agent.spool.entries() == []

    assert agent.stats.rejected_batches == {"http_500": 1}
    assert agent.stats.rejected_points["http_500"] == aside.points
    assert self_metric(receiver, "infersight.agent.export.rejected_batches", reason="http_500") == 1
    assert self_metric(receiver, "infersight.agent.spool.rejected.batches") == 1
    warnings = [m for r in caplog.records if r.levelno >= logging.WARNING
                and ("refused" in (m := r.getMessage()) or "export failed" in m)]
    assert len(warnings) == 1 and "http_500" in warnings[0] and "storage said no" in warnings[0]


def test_one_warning_per_distinct_refusal_and_a_bounded_dead_letter_area(tmp_path, receiver, caplog):
    refusals = {2: 400, 4: 400, 6: 413, 8: 400}
    receiver.status_for = lambda got: next((refusals[t] for t in ticks(got) if t in refusals), None)
    collector = Ticking()
    agent = make_agent(tmp_path, receiver.url, [ScheduledCollector("t", collector, 0.2, 1)],
                       self_metrics_interval_seconds=60, max_rejected_batches=2)
    with caplog.at_level(logging.WARNING, logger="infersight"):
        run_for(agent, 2.2)
    refused = [r for r in receiver.received if r.status in (400, 413)]
    assert len(refused) >= 3 and len({r.key for r in refused}) == len(refused), "each refused once"
    reasons = {f"http_{r.status}" for r in refused}
    assert Counter(agent.stats.rejected_batches) == Counter(f"http_{r.status}" for r in refused)
    warned = [r.getMessage() for r in caplog.records if "refused" in r.getMessage()]
    assert sorted(m.split(" with ")[1][:8] for m in warned) == sorted(reasons), "one warning per distinct reason"
    kept = agent.spool.rejected()
    assert [e.key for e in kept] == [r.key for r in refused][-2:], "the oldest set-aside batches go first"
    assert sorted(p.name for p in (tmp_path / "spool" / "rejected").iterdir()) == sorted(
        [e.path.name for e in kept] + [e.path.with_suffix(".json").name for e in kept])
    assert agent.spool.evicted_rejected_batches == len(refused) - 2
    stored = sorted(t for r in receiver.accepted() for t in ticks(r))
    assert stored == [t for t in range(1, collector.calls + 1) if t not in {t for r in refused for t in ticks(r)}]


def test_unauthorized_keeps_the_batch_and_retries_slowly(tmp_path, receiver, caplog):
    """401/403 is a credentials problem, not a bad batch: nothing is set aside, and it warns on every retry."""
    receiver.statuses = [401, 403]
    collector = Ticking()
    agent = make_agent(tmp_path, receiver.url, [ScheduledCollector("t", collector, 0.1, 1)],
                       auth_retry_interval_seconds=0.6)
    with caplog.at_level(logging.WARNING, logger="infersight"):
        run_for(agent, 2.0)
    first, second, third = receiver.received[:3]
    assert first.key == second.key == third.key and third.status == 200
    assert receiver.times[1] - receiver.times[0] >= 0.55 and receiver.times[2] - receiver.times[1] >= 0.55
    assert agent.spool.rejected() == [] and agent.stats.rejected_batches == {}
    assert sorted(t for r in receiver.accepted() for t in ticks(r)) == list(range(1, collector.calls + 1))
    assert [r.getMessage()[:25] for r in caplog.records] == ["export failed (http_401);", "export failed (http_403);"]


@pytest.mark.parametrize("header", ["1", "http-date"])
@pytest.mark.parametrize("status", [429, 503])
def test_retry_after_is_honoured(tmp_path, receiver, status, header):
    receiver.statuses = [status]
    # An HTTP date has whole seconds: 3 s ahead means a wait of 2 to 3 s.
    receiver.retry_after = formatdate(time.time() + 3, usegmt=True) if header == "http-date" else header
    low, high = (1.5, 4.0) if header == "http-date" else (0.9, 2.5)
    agent = make_agent(tmp_path, receiver.url, [ScheduledCollector("t", Ticking(), 0.1, 1)])
    run_for(agent, high + 0.5)
    assert receiver.received[0].status == status and receiver.received[1].key == receiver.received[0].key
    waited = receiver.times[1] - receiver.times[0]
    assert low <= waited <= high, waited  # retry_interval is 0.1 s: the server's delay was what counted
    assert agent.stats.rejected_batches == {}


def test_retry_after_header_forms():
    assert retry_after("120") == 120.0 and retry_after("-5") == 0.0 and retry_after("soon") is None
    assert retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412480.0 - 30) == 30.0


# -- bounded shutdown ------------------------------------------------------------------------------


def _accepted_once(receiver) -> dict[str, Received]:
    """What a deduplicating gateway stores: the first accepted copy per idempotency key."""
    out: dict[str, Received] = {}
    for r in receiver.accepted():
        out.setdefault(r.key, r)
    return out


def _host_points(received) -> int:
    return sum(1 for rm in received.request.resource_metrics for sm in rm.scope_metrics
               if sm.scope.name == "infersight.collector.host" for m in sm.metrics
               for _ in getattr(m, m.WhichOneof("data")).data_points)


def _collected(received) -> int | None:
    values = [dp.as_int for name, dp in received.points() if name == "infersight.agent.points.collected"]
    return max(values) if values else None


def _assert_all_delivered_once(receiver, first_log: str) -> None:
    """Every batch the first agent spooled is delivered once, and its host points add up to its own final
    `points.collected` counter: nothing collected before the stop was lost."""
    first_keys = set(spooled(first_log))
    stored = _accepted_once(receiver)
    assert first_keys <= set(stored), f"{len(first_keys - set(stored))} spooled batches never delivered"
    for r in receiver.accepted():  # a re-send carries the same bytes under the same key
        assert r.request == stored[r.key].request
    mine = [stored[k] for k in first_keys]
    assert sum(_host_points(r) for r in mine) == max(c for r in mine if (c := _collected(r)) is not None)
    ids = [(name, dp.time_unix_nano, tuple(sorted((kv.key, str(kv.value)) for kv in dp.attributes)))
           for r in stored.values() for name, dp in r.points() if not name.startswith("infersight.agent.")]
    assert len(ids) == len(set(ids)), "no point is stored twice"


SHUTDOWN_TIMEOUT = 1.5
MARGIN = 1.5  # interpreter teardown on a loaded 2-core machine


def _config(tmp_path, endpoint: str, spool_dir, **exporter):
    path = write_config(tmp_path / "agent.yaml", endpoint, spool_dir, **exporter)
    cfg = yaml.safe_load(path.read_text())
    cfg["agent"]["shutdown_timeout_seconds"] = SHUTDOWN_TIMEOUT
    path.write_text(yaml.safe_dump(cfg))
    return path


def _terminate_timed(agent: AgentProc) -> float:
    started = time.monotonic()
    assert agent.terminate(timeout=60) == 0
    return time.monotonic() - started


def test_sigterm_against_a_hanging_gateway_exits_in_time_and_spools_everything(tmp_path, port):
    """Before: the final export waited on a send that never returns (timeout 10 s, then another)."""
    hang = socket.socket()
    hang.bind(("127.0.0.1", port))
    hang.listen(64)  # connections complete, nobody ever answers
    spool_dir = tmp_path / "spool"
    config = _config(tmp_path, f"http://127.0.0.1:{port}", spool_dir, timeout_seconds=10)
    first = AgentProc(config, tmp_path / "agent1.log")
    try:
        wait_for(lambda: "spooled batch" in first.log(), 30, "a first batch")
        time.sleep(1.5)  # a send is in flight, and points keep piling up in memory behind it
        took = _terminate_timed(first)
    finally:
        if first.proc.poll() is None:
            first.kill()
        hang.close()
    assert took <= SHUTDOWN_TIMEOUT + MARGIN, f"SIGTERM took {took:.1f} s"
    assert set(spooled(first.log())) == set(spool_files(spool_dir)), "every spooled batch is still on disk"

    receiver = Receiver(port).start()
    second = AgentProc(config, tmp_path / "agent2.log")
    try:
        wait_for(lambda: set(spool_files(spool_dir)).isdisjoint(spooled(first.log())), 30, "the backlog to drain")
    finally:
        second.terminate()
        receiver.stop()
    _assert_all_delivered_once(receiver, first.log())


def test_sigterm_while_draining_a_backlog_to_a_slow_gateway_is_bounded(tmp_path, port):
    """Before: SIGTERM waited for the whole backlog to drain (here ~30 batches x 0.4 s)."""
    spool_dir = tmp_path / "spool"
    config = _config(tmp_path, f"http://127.0.0.1:{port}", spool_dir, export_interval_seconds=0.1,
                     retry_interval_seconds=0.2)
    first = AgentProc(config, tmp_path / "agent1.log")
    slow = Receiver(port)
    slow.delay_seconds = 0.4
    try:
        wait_for(lambda: len(spool_files(spool_dir)) >= 25, 30, "an outage backlog")
        slow.start()
        wait_for(lambda: len(slow.accepted()) >= 2, 30, "the drain to start")
        took = _terminate_timed(first)
    finally:
        if first.proc.poll() is None:
            first.kill()
        slow.stop()
    assert took <= SHUTDOWN_TIMEOUT + MARGIN, f"SIGTERM took {took:.1f} s"
    left = spool_files(spool_dir)
    assert len(left) >= 10, "most of the backlog waits in the spool"

    fast = Receiver(port).start()
    fast.received = slow.received  # one gateway that was slow, then fast: it remembers what it stored
    before = len(fast.received)
    second = AgentProc(config, tmp_path / "agent2.log")
    try:
        wait_for(lambda: set(left) <= {r.key for r in fast.accepted()}, 30, "the backlog to drain")
    finally:
        second.terminate()
        fast.stop()
    _assert_all_delivered_once(fast, first.log())
    # The backlog goes first, in the order it was spooled.
    resent = list(dict.fromkeys(r.key for r in fast.received[before:]))
    assert resent[:len(left)] == list(left)


def test_partial_success_is_counted_and_warned_once(tmp_path, port, caplog):
    """A 2xx whose body says points were dropped (as the gateway answers for NaN counters) is not 'all exported'."""
    from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceResponse

    answer = ExportMetricsServiceResponse()
    answer.partial_success.rejected_data_points = 1
    answer.partial_success.error_message = "test.tick: NaN cannot be rolled up"

    class Partial(Receiver):
        async def _handle(self, request):
            await super()._handle(request)
            return web.Response(body=answer.SerializeToString(), content_type="application/x-protobuf")

    receiver = Partial(port).start()
    try:
        collector = Ticking()
        agent = make_agent(tmp_path, receiver.url, [ScheduledCollector("t", collector, 0.1, 1)],
                           self_metrics_interval_seconds=60)
        with caplog.at_level(logging.WARNING, logger="infersight"):
            run_for(agent, 1.0)
    finally:
        receiver.stop()
    batches = len(receiver.received)
    assert agent.stats.rejected_points == {"partial_success": batches}
    assert agent.stats.exported == sum(len(r.points()) for r in receiver.received) - batches
    assert agent.spool.entries() == [] and agent.spool.rejected() == []
    (warning,) = [r.getMessage() for r in caplog.records]
    assert "dropped 1 of the" in warning and "NaN cannot be rolled up" in warning
