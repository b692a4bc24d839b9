"""The node agent assembled from its configuration: collectors, spool, sender and the loop, until a signal.

This is the agent's composition root (what `infersight agent` runs); `agent.loop` decides when to
collect and export, the exporters how to ship.
"""
from __future__ import annotations

import functools
import logging
import signal
import threading

from infersight.agent.loop import Agent, Deferred, ScheduledCollector
from infersight.agent.resource import resolve_resource
from infersight.collectors.base import Collector
from infersight.collectors.registry import collector_class
from infersight.config import AgentSections, CollectorConfig
from infersight.exporters.senders import make_sender
from infersight.exporters.spool import Spool, SpoolInUse

log = logging.getLogger(__name__)


def build_collectors(cfg: AgentSections) -> tuple[list[ScheduledCollector], list[str]]:
    """Instantiate each configured collector; one that cannot start is reported and kept as a `Deferred`
    placeholder (down, start retried with backoff), never dropped."""
    out, errors = [], []
    for entry in cfg.collectors:
        name = entry.name or entry.type
        start = functools.partial(_start, entry)
        collector: Collector | Deferred
        try:
            collector = start()
        except Exception as err:  # noqa: BLE001 (e.g. a driver library missing on this node)
            errors.append(f"collector {name} could not start: {type(err).__name__}: {err}")
            collector = Deferred(entry.type, start, f"{type(err).__name__}: {err}")
        out.append(ScheduledCollector(name, collector, entry.interval_seconds, entry.timeout_seconds))
    return out, errors


def _start(entry: CollectorConfig) -> Collector:
    return collector_class(entry.type).from_config(entry)


def run_agent(cfg: AgentSections) -> int:
    """Collect and export until SIGTERM/SIGINT; 2 when the spool cannot be opened. Runs in the main thread
    (signal handlers can only be set there)."""
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda _sig, _frame: stop.set())
    resource = resolve_resource(cfg.resource)
    collectors, errors = build_collectors(cfg)
    for e in errors:
        log.error("%s", e)
    ex = cfg.agent.exporter
    try:
        spool = Spool(ex.spool_dir, ex.max_spool_bytes, max_rejected_bytes=ex.max_rejected_bytes,
                      max_rejected_batches=ex.max_rejected_batches)
    except (SpoolInUse, OSError) as err:
        log.error("cannot open the spool: %s", err)
        return 2
    try:
        sender = make_sender(ex)
    except ValueError as err:
        log.error("agent.exporter.endpoint: %s", err)
        spool.close()
        return 2
    agent = Agent(cfg.agent, collectors, sender, spool, resource)
    log.info("agent started: %d collectors, exporting to %s (%s), spool %s",
             len(collectors), ex.endpoint, ex.protocol, ex.spool_dir)
    try:
        agent.run(stop)
    finally:
        spool.close()
    log.info("agent stopped; %d batches left in the spool", len(spool.entries()))
    return 0
