"""Disk spool: order, bound, torn writes, retry classification — against a real local receiver."""
from __future__ import annotations

import pytest

from infersight.agent.loop import ScopedPoints
from infersight.collectors.base import MetricSpec
from infersight.exporters.encode import encode, to_metrics_data
from infersight.exporters.senders import HttpSender
from infersight.exporters.spool import Spool, SpoolInUse

SPEC = MetricSpec("test.value", "gauge", "1", "a test gauge", ("n",))


def batch(n: int) -> bytes:
    pts = [SPEC.point(float(n), {"n": n})]
    return encode(to_metrics_data([ScopedPoints("test", pts)], {"service.name": "t"}, 1))


def sent_values(recorder) -> list[float]:
    return [dp.as_double for r in recorder.accepted() for _, dp in r.points()]


def test_batches_are_sent_oldest_first_and_deleted(tmp_path, recorder, sender):
    spool = Spool(tmp_path, 10**6)
    entries = [spool.put(batch(i), 1) for i in range(5)]
    report = spool.drain(sender)
    assert report.failure is None and report.sent_batches == 5 and report.sent_points == 5
    assert sent_values(recorder) == [0.0, 1.0, 2.0, 3.0, 4.0]
    assert [r.key for r in recorder.received] == [e.key for e in entries]
    assert spool.entries() == [] and list(tmp_path.glob("*.otlp")) == []


def test_retryable_failure_keeps_order_and_key(tmp_path, recorder, sender):
    spool = Spool(tmp_path, 10**6)
    first, second = spool.put(batch(0), 1), spool.put(batch(1), 1)
    recorder.statuses = [503]
    report = spool.drain(sender)
    assert report.failure is not None and report.failure.reason == "http_503"
    assert report.sent_batches == 0 and spool.entries() == [first, second]
    # A restarted agent sees the same batches, in the same order, under the same keys.
    spool.close()
    reopened = Spool(tmp_path, 10**6)
    assert [(e.seq, e.key) for e in reopened.entries()] == [(first.seq, first.key), (second.seq, second.key)]
    assert reopened.drain(sender).sent_batches == 2
    assert [r.key for r in recorder.received] == [first.key, first.key, second.key]
    assert sent_values(recorder) == [0.0, 1.0]
    assert reopened.put(batch(2), 1).seq == second.seq + 1


@pytest.mark.parametrize("status", [429, 502, 503, 504])
def test_otlp_retryable_statuses_are_kept_with_retry_after(tmp_path, recorder, sender, status):
    spool = Spool(tmp_path, 10**6)
    spool.put(batch(0), 1)
    recorder.statuses, recorder.retry_after = [status], "7"
    report = spool.drain(sender)
    assert report.failure.outcome == "retry" and report.failure.reason == f"http_{status}"
    assert report.failure.retry_after_seconds == (7.0 if status in (429, 503) else None)
    assert len(spool.entries()) == 1


@pytest.mark.parametrize("status", [400, 404, 413, 415, 500, 501])
def test_permanent_refusal_is_set_aside_not_retried(tmp_path, recorder, sender, status):
    spool = Spool(tmp_path, 10**6)
    bad, good = spool.put(batch(0), 3), spool.put(batch(1), 1)
    recorder.statuses = [status]
    report = spool.drain(sender)
    assert report.failure is None
    assert [(e.key, r.reason) for e, r in report.rejected] == [(bad.key, f"http_{status}")]
    assert report.sent_batches == 1 and spool.entries() == []
    assert [e.key for e in spool.rejected()] == [bad.key]
    assert spool.drain(sender).sent_batches == 0
    assert [r.key for r in recorder.received] == [bad.key, good.key]


def test_unreachable_receiver_is_retryable(tmp_path, port):
    spool = Spool(tmp_path, 10**6)
    spool.put(batch(0), 1)
    report = spool.drain(HttpSender(f"http://127.0.0.1:{port}", {}, timeout_seconds=1))
    assert report.failure.outcome == "retry" and report.failure.reason == "connection"
    assert len(spool.entries()) == 1


def test_bound_drops_oldest_and_counts(tmp_path):
    size = len(batch(0))
    spool = Spool(tmp_path, 3 * size)
    entries = [spool.put(batch(i), 2) for i in range(5)]
    assert spool.entries() == entries[2:]
    assert spool.dropped_batches == 2 and spool.dropped_points == 4
    assert spool.bytes == 3 * size <= spool.max_bytes
    assert sorted(p.name for p in tmp_path.glob("*.otlp")) == [e.path.name for e in entries[2:]]


def test_batch_larger_than_bound_is_dropped_itself(tmp_path):
    spool = Spool(tmp_path, 10)
    spool.put(batch(0), 1)
    assert spool.entries() == [] and spool.dropped_batches == 1


def test_torn_tmp_file_is_ignored_and_removed(tmp_path, recorder, sender):
    spool = Spool(tmp_path, 10**6)
    whole = spool.put(batch(0), 1)
    torn = tmp_path / f"{whole.seq + 1:016d}-00000000-0000-0000-0000-000000000000-1.otlp.tmp"
    torn.write_bytes(batch(1)[:7])
    spool.close()
    reopened = Spool(tmp_path, 10**6)
    assert not torn.exists()
    assert [e.key for e in reopened.entries()] == [whole.key]
    assert reopened.drain(sender).sent_batches == 1
    assert sent_values(recorder) == [0.0]


def test_batch_removed_behind_our_back_is_skipped(tmp_path, recorder, sender):
    spool = Spool(tmp_path, 10**6)
    gone, kept = spool.put(batch(0), 1), spool.put(batch(1), 1)
    gone.path.unlink()
    report = spool.drain(sender)
    assert [e.key for e in report.unreadable] == [gone.key] and report.rejected == []
    assert report.sent_batches == 1 and [r.key for r in recorder.received] == [kept.key]
    assert spool.entries() == []


def test_one_agent_per_spool_directory(tmp_path):
    first = Spool(tmp_path, 10**6)
    with pytest.raises(SpoolInUse, match="in use by another agent"):
        Spool(tmp_path, 10**6)
    first.close()
    Spool(tmp_path, 10**6).close()


def test_http_request_carries_headers_key_and_content_type(tmp_path, recorder):
    sender = HttpSender(recorder.url, {"Authorization": "Bearer t0k", "X-Tenant": "acme"}, timeout_seconds=2)
    spool = Spool(tmp_path, 10**6)
    entry = spool.put(batch(0), 1)
    assert spool.drain(sender).sent_batches == 1
    sender.close()
    (got,) = recorder.received
    assert got.headers["Authorization"] == "Bearer t0k" and got.headers["X-Tenant"] == "acme"
    assert got.headers["Content-Type"] == "application/x-protobuf"
    assert got.headers["Idempotency-Key"] == entry.key
