"""Run the agent loop in-process on its own thread, the way `infersight agent` runs it, until told to stop."""
from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from infersight.agent.loop import Agent


@contextmanager
def running(agent: Agent, join_timeout: float = 10.0) -> Iterator[None]:
    """The agent runs while the block does; on leaving, stop is set and the agent must be done within
    `join_timeout` (its shutdown is bounded); an exception `run` raised is raised here."""
    stop = threading.Event()
    errors: list[BaseException] = []

    def target() -> None:
        try:
            agent.run(stop)
        except BaseException as err:  # noqa: BLE001 (handed to the test's thread)
            errors.append(err)

    thread = threading.Thread(target=target, name="test-agent")
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(join_timeout)
    assert not thread.is_alive(), f"the agent did not stop within {join_timeout} s"
    if errors:
        raise errors[0]


def run_for(agent: Agent, seconds: float) -> None:
    with running(agent):
        time.sleep(seconds)
