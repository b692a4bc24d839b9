"""The `neuron` collector: AWS Trainium/Inferentia through `neuron-monitor`, run as a child process.

neuron-monitor writes one JSON document per line (`wire`); a reader thread (`supervisor`) feeds
them into running state (`state`), and `collect()` only reads that state. The child is restarted
with exponential backoff when it exits; a malformed document is skipped and counted; a group's
`error` string is counted as a metric, never raised.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Literal

from pydantic import Field

from infersight.collectors.base import Health, Point, type_of
from infersight.collectors.neuron.metrics import METRICS
from infersight.collectors.neuron.state import State
from infersight.collectors.neuron.supervisor import Supervisor
from infersight.config import CollectorConfig


class NeuronConfig(CollectorConfig):
    """Options of the `neuron` collector."""

    type: Literal["neuron"] = "neuron"
    command: tuple[str, ...] = Field(("neuron-monitor",), min_length=1,
                                     description="neuron-monitor executable and arguments")
    config_path: Path | None = Field(None, description="neuron-monitor configuration file, passed as "
                                                       "`-c PATH` (its own defaults when unset)")
    restart_backoff_initial_seconds: float = Field(1.0, gt=0, description="Wait before the first restart "
                                                                          "of a neuron-monitor that exited")
    restart_backoff_max_seconds: float = Field(60.0, gt=0, description="Longest wait between restarts; the "
                                                                      "wait doubles while it keeps failing")
    first_report_wait_seconds: float = Field(2.0, ge=0, description="How long the first collect waits for "
                                                                   "neuron-monitor's first document; it stops "
                                                                   "waiting if neuron-monitor exits or cannot "
                                                                   "start (keep it under timeout_seconds)")
    document_timeout_seconds: float = Field(30.0, gt=0, description="The collector counts as down when a "
                                                                    "running neuron-monitor sends no document "
                                                                    "for this long (keep it above its period)")


class NeuronCollector:
    """Reads neuron-monitor's document stream; see the module docstring."""

    type = type_of(NeuronConfig)
    Config = NeuronConfig
    metrics = METRICS

    def __init__(self, command: Sequence[str], *, restart_backoff_initial_seconds: float = 1.0,
                 restart_backoff_max_seconds: float = 60.0, first_report_wait_seconds: float = 0.0,
                 document_timeout_seconds: float = 30.0) -> None:
        self._first_wait = first_report_wait_seconds
        self._document_timeout = document_timeout_seconds
        self._state = State()
        self._supervisor = Supervisor(command, self._state,
                                      (restart_backoff_initial_seconds, restart_backoff_max_seconds))
        self.feed = self._state.feed  # one line of neuron-monitor output; public so the parser runs alone

    @classmethod
    def from_config(cls, cfg: NeuronConfig) -> NeuronCollector:
        """The collector running the configured neuron-monitor command."""
        command = [*cfg.command, *(["-c", str(cfg.config_path)] if cfg.config_path else [])]
        return cls(command, restart_backoff_initial_seconds=cfg.restart_backoff_initial_seconds,
                   restart_backoff_max_seconds=cfg.restart_backoff_max_seconds,
                   first_report_wait_seconds=cfg.first_report_wait_seconds,
                   document_timeout_seconds=cfg.document_timeout_seconds)

    def collect(self) -> Iterable[Point]:
        """Start neuron-monitor on first use (waiting briefly for its first document, or for it to end without
        one), then read the state."""
        if self._supervisor.start():
            self._state.first_outcome.wait(self._first_wait)
        return self._state.points()

    def health(self) -> Health:
        """Down while neuron-monitor is not running (not_running) or sends no documents (no_documents)."""
        running, age = self._state.liveness()
        if not running:
            why = self._supervisor.start_error
            if why is None:
                status = self._state.exit_status
                why = ("neuron-monitor is not running" if status is None
                       else f"neuron-monitor exited with status {status}; restarting with backoff")
            return Health(False, "not_running", why)
        if age is not None and age > self._document_timeout:
            return Health(False, "no_documents", f"neuron-monitor runs but sent no document for {age:.0f} s")
        return Health(True)

    def close(self) -> None:
        """Stop neuron-monitor."""
        self._supervisor.close()
