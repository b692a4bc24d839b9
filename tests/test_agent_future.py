"""agent.loop.Future: a call's outcome handed from the thread that ran it to the one that waits."""
from __future__ import annotations

import threading

import pytest

from infersight.agent.loop import Future, Worker, in_daemon_thread


def test_result_error_and_timeout():
    release = threading.Event()
    slow = in_daemon_thread(lambda: release.wait(60) and 42)
    with pytest.raises(TimeoutError):
        slow.result(0.01)
    assert not slow.done() and not slow.wait(0)
    release.set()
    assert slow.result(60) == 42 and slow.done() and slow.exception() is None

    def boom() -> None:
        raise KeyError("x")

    failed = in_daemon_thread(boom)
    assert isinstance(failed.exception(60), KeyError)
    with pytest.raises(KeyError):
        failed.result()


def test_done_callbacks_before_and_after_completion():
    fut: Future[int] = Future()
    seen: list[tuple[str, int]] = []
    fut.add_done_callback(lambda f: seen.append(("before", f.result())))
    assert seen == []
    fut.run(lambda: 7)
    fut.add_done_callback(lambda f: seen.append(("after", f.result())))
    assert seen == [("before", 7), ("after", 7)]


def test_worker_runs_calls_in_turn_on_one_thread():
    worker = Worker("test-worker")
    names = [worker.submit(lambda: threading.current_thread().name) for _ in range(3)]
    assert [f.result(60) for f in names] == ["test-worker"] * 3
    worker.close()
