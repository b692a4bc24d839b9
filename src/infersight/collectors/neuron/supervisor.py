"""Runs neuron-monitor as a child process and restarts it with exponential backoff when it exits.

A reader thread passes every output line to `State.feed`; the wait before a restart doubles while
runs produce no document and resets after one that did. `close()` terminates the child (kill after
5 s) and joins the thread.
"""
from __future__ import annotations

import logging
import subprocess
import threading
from collections.abc import Sequence

from infersight.collectors.neuron.state import State

log = logging.getLogger(__name__)


class Supervisor:
    """One neuron-monitor process at a time, feeding `state`."""

    def __init__(self, command: Sequence[str], state: State, backoff: tuple[float, float]) -> None:
        self._command = list(command)
        self._state = state
        self._backoff = backoff
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.proc: subprocess.Popen | None = None
        self.start_error: str | None = None  # why the last start failed, until one succeeds

    def start(self) -> bool:
        """Start the supervising thread, once; False when it already runs or `close()` was called."""
        if self._thread is not None or self._stop.is_set():
            return False
        self._thread = threading.Thread(target=self._supervise, name="neuron-monitor", daemon=True)
        self._thread.start()
        return True

    def close(self) -> None:
        """Stop restarting, terminate the child and wait for the thread."""
        self._stop.set()
        with self._state.lock:
            proc = self.proc
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
        if self._thread is not None:
            self._thread.join(5)

    def _supervise(self) -> None:
        failures = 0
        first = True
        while not self._stop.is_set():
            if not first:
                self._state.restarting()
            first = False
            produced = False
            try:
                proc = subprocess.Popen(self._command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE)
            except OSError as err:
                log.warning("neuron-monitor could not start (%s): %s", self._command[0], err)
                self.start_error = f"{self._command[0]} could not start: {err}"
                self._state.first_outcome.set()
            else:
                produced = self._run(proc)
            failures = 0 if produced else failures + 1
            delay = min(self._backoff[0] * 2 ** max(failures - 1, 0), self._backoff[1])
            if not self._stop.is_set():
                log.warning("neuron-monitor exited; restarting in %.2f s", delay)
            self._stop.wait(delay)

    def _run(self, proc: subprocess.Popen) -> bool:
        """Feed the child's output until it exits; True when it produced a document."""
        with self._state.lock:
            self.proc = proc
            self.start_error = None
        self._state.process_started()
        if self._stop.is_set():  # close() raced with the start
            proc.terminate()
        assert proc.stdout is not None
        for line in proc.stdout:
            self._state.feed(line)
        proc.stdout.close()
        rc = proc.wait()
        with self._state.lock:
            self.proc = None
        produced = self._state.process_exited(rc)
        log.info("neuron-monitor exited with status %s", rc)
        return produced
