"""The SLO engine: evaluate → alert states → groups → outbox → receivers, with state in the store.

`when` (the server's loop, `service.py`) is separate from `what` (this class). Time comes only from
the injected clock or an explicit `now`, so tests drive incidents minute by minute.
"""
from __future__ import annotations

import logging
import random
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import aiohttp
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from infersight.slo import views
from infersight.slo.alert_log import AlertLog
from infersight.slo.alerts import AlertPolicy, AlertTracker, Dispatcher, desired_alerts, silenced
from infersight.slo.evaluator import Evaluator
from infersight.slo.model import Slo
from infersight.slo.notifiers import DeliveryError, render, send
from infersight.slo.records import AlertRecord, Notification, Silence
from infersight.slo.results import InstanceResult
from infersight.slo.settings import SloSettings
from infersight.slo.sli.layout import ROLLUPS, Layout
from infersight.slo.store import StateStore

log = logging.getLogger(__name__)


class EngineMetrics:
    """Delivery failures and engine health, on a registry of their own (survives engine re-creation)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry = registry or CollectorRegistry()
        self.notifications = Counter("infersight_slo_notifications", "Notification delivery attempts by outcome",
                                     ["receiver", "outcome"], registry=registry)
        self.outbox = Gauge("infersight_slo_outbox_pending", "Notifications waiting for delivery",
                            registry=registry)
        self.evaluations = Counter("infersight_slo_evaluations", "Evaluation cycles by outcome", ["outcome"],
                                   registry=registry)
        self.duration = Histogram("infersight_slo_evaluation_duration_seconds", "Time per evaluation cycle",
                                  registry=registry)
        self.alerts = Gauge("infersight_slo_alerts", "Alerts by state", ["state"], registry=registry)


PRUNE_EVERY_SECONDS = 3600


class SloEngine:
    def __init__(self, storage, settings: SloSettings, slos: Sequence[Slo],
                 clock: Callable[[], float] = time.time, metrics: EngineMetrics | None = None,
                 rng: random.Random | None = None, layout: Layout = ROLLUPS) -> None:
        self.store = StateStore(storage)
        self.alert_log = AlertLog(self.store)
        self.evaluator = Evaluator(storage, layout)
        self.clock = clock
        self.rng = rng or random.Random()
        self.metrics = metrics or EngineMetrics()
        self.registry = self.metrics.registry
        self.lock = threading.RLock()
        self.settings = settings
        self.slos = {s.name: s for s in slos}
        self.tracker = AlertTracker()
        self._unsaved: dict[str, AlertRecord] = {}
        self.dispatcher = Dispatcher(settings)
        self.silences: list[Silence] = []
        self.outbox: list[Notification] = []
        self.load_state()
        self.results: list[InstanceResult] = []
        self.evaluated_at: float | None = None
        # SLO name -> this engine's first evaluation of it (the no-data grace period counts from there).
        self.watched_since: dict[str, float] = {}
        self.pruned_at = 0.0

    def load_state(self) -> None:
        """Alerts, groups, silences and the outbox as stored: at start, and when this server takes the
        lease over from another (`slo.lease`), whose versions it then continues above."""
        alerts, last = self.store.load_alerts(), self.store.last_per_group()
        outbox = self.store.pending_notifications()
        self.store.floor_versions()
        with self.lock:  # silences read under the lock: one this server's API adds meanwhile is not lost
            silences = self.store.load_silences()
            self.tracker = AlertTracker(alerts)
            self._unsaved.clear()
            self.dispatcher = Dispatcher(self.settings, last)
            self.silences, self.outbox = silences, outbox
            self.alert_log.restore(outbox)
            self.metrics.outbox.set(len(outbox))

    def load_silences(self) -> None:
        """Silences as stored: another server's API may have added or expired one. Read under the lock, so a
        silence this server's API adds meanwhile is in what is read, never overwritten by an older read."""
        with self.lock:
            self.silences = self.store.load_silences()

    @property
    def receivers(self) -> dict[str, Any]:
        return {r.name: r for r in self.settings.receivers}

    def reload(self, settings: SloSettings, slos: Sequence[Slo]) -> None:
        """New specs/receivers; alert state, groups, silences and the outbox carry over."""
        with self.lock:
            self.settings = settings
            self.slos = {s.name: s for s in slos}
            self.dispatcher.configure(settings)

    # -- evaluation ---------------------------------------------------------------------------------
    def evaluate(self, now: float | None = None) -> list[InstanceResult]:
        """Evaluate every SLO at `now`, update and persist alert states, enqueue due notifications."""
        now = self.clock() if now is None else now
        started = time.perf_counter()
        with self.lock:
            slos = list(self.slos.values())
        results = self.evaluator.evaluate(slos, now)
        errors = sum(r.state == "error" for r in results)
        self.metrics.evaluations.labels("error" if errors else "ok").inc()
        for res in results:
            if res.state == "error":
                log.warning("slo %s: %s", res.slo.name, res.error)
        with self.lock:
            policy = AlertPolicy.from_settings(self.settings)
            for s in slos:
                self.watched_since.setdefault(s.name, now)
            tracked = {fp for fp, r in self.tracker.alerts.items() if r.state in ("pending", "firing")}
            desired, evaluated = desired_alerts(results, policy, self.watched_since, now, tracked)
            changed, deleted = self.tracker.update(
                desired, evaluated, now, lambda rec: policy.keep_for(self.slos.get(rec.labels.get("slo", ""))))
            # Transitions not yet stored (a failed write is retried next cycle).
            for r in changed:
                self._unsaved[r.fingerprint] = r
            for r in deleted:
                self._unsaved.pop(r.fingerprint, None)
            self.store.save_alerts(list(self._unsaved.values()), deleted)
            self._unsaved.clear()
            self.alert_log.transitions(changed, now, *self.muted(now))
            self.results, self.evaluated_at = results, now
            self._dispatch(now)
            if now - self.pruned_at >= PRUNE_EVERY_SECONDS:
                self.store.prune_notifications(now - self.settings.outbox_retention_days * 86400)
                self.pruned_at = now
        self.alert_log.flush()  # this evaluation's transitions and notifications, in one insert
        self.metrics.duration.observe(time.perf_counter() - started)
        return results

    def status_at(self, at: float, point_in_time: bool = True) -> list[InstanceResult]:
        """Evaluate without touching alert state: at a past moment (`slo status --at`, windows ending at
        `at` rounded down to the minute), or live (`point_in_time=False`: the current minute counts)."""
        return self.evaluator.evaluate(list(self.slos.values()), at, point_in_time=point_in_time)

    # -- grouping and outbox ------------------------------------------------------------------------
    def muted(self, now: float) -> tuple[set[str], set[str]]:
        sil = silenced(self.tracker.alerts, self.silences, now)
        inh = self.tracker.inhibited(self.slos, sil) if self.settings.inhibit_slower_tiers else set()
        return sil, inh

    def dispatch(self, now: float | None = None) -> list[Notification]:
        """Flush due groups into the outbox (and their deliveries into the alert log)."""
        new = self._dispatch(now)
        self.alert_log.flush()
        return new

    def _dispatch(self, now: float | None = None) -> list[Notification]:
        now = self.clock() if now is None else now
        with self.lock:
            sil, inh = self.muted(now)
            told = {k: set(g.notified_firing) for k, g in self.dispatcher.groups.items()}
            flushes = self.dispatcher.tick(self.tracker.alerts, sil | inh, now)
            new: list[Notification] = []
            logged: list[tuple[Notification, list[AlertRecord], list[AlertRecord]]] = []
            for f in flushes:
                rcv = self.receivers.get(f.receiver)
                if rcv is None:
                    log.error("route points to unknown receiver %s", f.receiver)
                    continue
                n = Notification(uuid.uuid4().hex, f.group_key, f.receiver, now,
                                 [r.fingerprint for r in f.firing], [r.fingerprint for r in f.resolved],
                                 render(f, rcv, self.settings.external_url, now), next_attempt_at=now)
                new.append(n)
                before = told.get(f.group_key, set())
                logged.append((n, [r for r in f.firing if r.fingerprint not in before], f.resolved))
            # One insert: the outbox row is also the group's memory of what it sent.
            self.store.save_notifications(new)
            self.outbox.extend(new)
            for n, firing, resolved in logged:
                self.alert_log.notified(n, firing, resolved)
            gone = [r for fp, r in self.tracker.alerts.items()
                    if r.state == "resolved" and not self.dispatcher.still_needed(fp)]
            for r in gone:
                del self.tracker.alerts[r.fingerprint]
            self.store.save_alerts([], gone)
            self._gauges()
            return new

    def _gauges(self) -> None:
        self.metrics.outbox.set(len(self.outbox))
        for state in ("pending", "firing", "resolved"):
            self.metrics.alerts.labels(state).set(sum(r.state == state for r in self.tracker.alerts.values()))

    def backoff(self, attempts: int) -> float:
        d = self.settings.delivery
        base = min(d.backoff_max_seconds, d.backoff_initial_seconds * 2 ** (attempts - 1))
        return base * (0.5 + self.rng.random())  # full jitter around the exponential step

    async def deliver(self, session: aiohttp.ClientSession, now: float | None = None) -> int:
        """Send due notifications in order per group; returns how many were delivered."""
        now = self.clock() if now is None else now
        sent = 0
        blocked: set[str] = set()
        for n in sorted(list(self.outbox), key=lambda n: (n.created_at, n.id)):
            if n.group_key in blocked:
                continue
            if n.next_attempt_at > now:
                blocked.add(n.group_key)
                continue
            rcv = self.receivers.get(n.receiver)
            try:
                if rcv is None:
                    raise DeliveryError(f"receiver '{n.receiver}' is no longer configured")
                await send(session, rcv, n.body)
            except DeliveryError as err:
                n.attempts += 1
                n.last_error = str(err)
                if rcv is None or n.attempts >= self.settings.delivery.max_attempts:
                    n.status = "failed"
                    self.metrics.notifications.labels(n.receiver, "failed").inc()
                    log.error("notification %s to %s failed for good: %s", n.id, n.receiver, err)
                else:
                    n.next_attempt_at = now + self.backoff(n.attempts)
                    self.metrics.notifications.labels(n.receiver, "retry").inc()
                    log.warning("notification %s to %s failed (attempt %d): %s", n.id, n.receiver,
                                n.attempts, err)
                    blocked.add(n.group_key)
            else:
                n.attempts += 1
                n.status = "sent"
                sent += 1
                self.metrics.notifications.labels(n.receiver, "sent").inc()
            with self.lock:
                self.store.save_notifications([n])
                self.alert_log.delivered(n)
                if n.status != "pending":
                    self.outbox.remove(n)
        self._gauges()
        self.alert_log.flush()  # this round's delivery results, in one insert
        return sent

    # -- silences -----------------------------------------------------------------------------------
    def add_silence(self, matchers: list[dict], ends_at: float, starts_at: float | None = None,
                    created_by: str = "", comment: str = "") -> Silence:
        """A new silence, stored and in force from `starts_at` (default now)."""
        with self.lock:
            s = create_silence(self.store, matchers, self.clock(), ends_at, starts_at, created_by, comment)
            self.silences.append(s)
        return s

    def expire_silence(self, silence_id: str) -> Silence:
        """End a silence now; KeyError when there is none with that id."""
        with self.lock:
            return expire_silence(self.store, self.silences, silence_id, self.clock())

    # -- read side (JSON in `views`) -----------------------------------------------------------------
    def alert_states(self, now: float | None = None) -> list[tuple[AlertRecord, bool, bool]]:
        """Every tracked alert with (silenced, inhibited), ordered by SLO then fingerprint."""
        now = self.clock() if now is None else now
        with self.lock:
            sil, inh = self.muted(now)
            return [(r, r.fingerprint in sil, r.fingerprint in inh)
                    for r in sorted(self.tracker.alerts.values(), key=lambda r: (r.labels.get("slo", ""),
                                                                                 r.fingerprint))]

    def alerts_view(self, now: float | None = None) -> list[dict]:
        return views.alerts_json(self.alert_states(now))

    def slos_view(self) -> dict:
        with self.lock:
            return views.slos_json(list(self.slos.values()), self.evaluated_at, self.results)


def create_silence(store: StateStore, matchers: list[dict], now: float, ends_at: float,
                   starts_at: float | None = None, created_by: str = "", comment: str = "") -> Silence:
    """The silence rules (at least one matcher, ends after it starts), for the engine and the offline CLI."""
    if not matchers:
        raise ValueError("a silence needs at least one matcher")
    s = Silence(uuid.uuid4().hex, matchers, starts_at if starts_at is not None else now, ends_at,
                created_by, comment)
    if s.ends_at <= s.starts_at:
        raise ValueError("endsAt must be after startsAt")
    store.save_silence(s)
    return s


def expire_silence(store: StateStore, silences: Iterable[Silence], silence_id: str, now: float) -> Silence:
    """End the silence `silence_id` at `now` (never before it starts); KeyError when it is not there."""
    for s in silences:
        if s.id == silence_id:
            if s.ends_at > now:
                s.ends_at = max(now, s.starts_at)
                store.save_silence(s)
            return s
    raise KeyError(silence_id)
