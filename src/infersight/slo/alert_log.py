"""The lasting alert log: every firing and resolved transition the engine makes, and what became of it.

The engine's own state keeps only live alerts (a resolved one is dropped once its groups told their
receivers) and the outbox is pruned after `outbox_retention_days`, so neither can answer "what fired
last week, and did on-call get it?". This log can: a row per transition (silenced or inhibited when it
happened, or not) and a row per receiver that was told of it, replaced as the delivery result comes
in. Rows are buffered and written in one insert per evaluation and per delivery round; a failed write
is kept for the next flush and never fails the evaluation. `GET /api/v1/alerts/history` reads it.
"""
from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Mapping
from dataclasses import replace

from infersight.slo.notifiers import rfc3339
from infersight.slo.records import AlertRecord, LogEntry, Notification
from infersight.slo.store import StateStore
from infersight.storage.base import StorageError

log = logging.getLogger(__name__)

# Rows kept for the next flush while the store refuses writes (the oldest are dropped beyond).
MAX_BUFFERED = 10_000
DEFAULT_SINCE_SECONDS = 7 * 86400
MAX_SINCE_SECONDS = 365 * 86400  # the table's TTL
DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
HISTORY_PARAMS = ("slo", "since_seconds", "limit")


def _summary(r: AlertRecord) -> str:
    return r.annotations.get("summary") or r.annotations.get("description") or ""


class AlertLog:
    """What the engine tells the log; `flush` writes it (the engine calls it outside its evaluation lock)."""

    def __init__(self, store: StateStore, max_buffered: int = MAX_BUFFERED) -> None:
        self.store = store
        self.max_buffered = max_buffered
        self.buffer: list[LogEntry] = []
        # Notification id -> its delivery rows, until the delivery settles (sent or failed).
        self.open: dict[str, list[LogEntry]] = {}
        self._lock = threading.Lock()

    def _add(self, rows: Iterable[LogEntry]) -> None:
        with self._lock:
            self.buffer.extend(replace(e) for e in rows)  # copies: later results must not rewrite queued rows

    def transitions(self, changed: Iterable[AlertRecord], now: float, silenced: set[str],
                    inhibited: set[str]) -> None:
        """The alerts of one evaluation that started firing or resolved at `now` (other changes are not
        transitions: pending, or a firing alert's resolve time set or cleared)."""
        rows: dict[str, LogEntry] = {}
        for r in changed:
            if r.state == "firing" and r.starts_at == now:
                event, at, ends = "firing", now, None
            elif r.state == "resolved":
                event, at, ends = "resolved", r.ends_at or now, r.ends_at
            else:
                continue
            muted = "silenced" if r.fingerprint in silenced else "inhibited" if r.fingerprint in inhibited else ""
            rows[r.fingerprint] = LogEntry(r.fingerprint, event, at, dict(r.labels), _summary(r), r.starts_at, ends,
                                           muted=muted)
        self._add(rows.values())

    def notified(self, n: Notification, firing: Iterable[AlertRecord], resolved: Iterable[AlertRecord]) -> None:
        """`n` enqueued: a pending delivery row for each transition it is the first to tell `n.receiver` of
        (`firing`: those its group had not notified yet; repeats of a firing group are not transitions)."""
        rows = [LogEntry(r.fingerprint, "firing", r.starts_at or r.active_at, dict(r.labels), _summary(r),
                         r.starts_at, None, n.receiver, n.id, delivery="pending") for r in firing]
        rows += [LogEntry(r.fingerprint, "resolved", r.ends_at or n.created_at, dict(r.labels), _summary(r),
                          r.starts_at, r.ends_at, n.receiver, n.id, delivery="pending") for r in resolved]
        if rows:
            self.open[n.id] = rows
            self._add(rows)

    def delivered(self, n: Notification) -> None:
        """A delivery attempt of `n` ended: its rows again with the result (still pending while retried)."""
        rows = self.open.get(n.id)
        if not rows:
            return
        for e in rows:
            e.delivery, e.attempts = n.status, n.attempts
            e.error = "" if n.status == "sent" else n.last_error  # attempts says whether it took retries
        if n.status != "pending":
            del self.open[n.id]
        self._add(rows)

    def restore(self, outbox: Iterable[Notification]) -> None:
        """The delivery rows of what is still in the outbox (after a restart or a lease take-over)."""
        self.open = {}
        for e in self.store.log_deliveries([n.id for n in outbox]):
            self.open.setdefault(e.notification_id, []).append(e)

    def flush(self) -> bool:
        """Write what is buffered in one insert; False (rows kept, a warning logged) when the store refuses."""
        with self._lock:
            batch, self.buffer = self.buffer, []
        if not batch:
            return True
        try:
            self.store.save_log(batch)
        except StorageError as err:
            with self._lock:
                kept = batch + self.buffer
                self.buffer = kept[-self.max_buffered:]
            dropped = len(kept) - len(self.buffer)
            log.warning("alert log: %d rows not written, retried next cycle%s: %s", len(batch),
                        f" ({dropped} oldest dropped)" if dropped else "", err)
            return False
        return True


def parse_history_query(query: Mapping[str, str]) -> tuple[str | None, int, int]:
    """`slo`, `since_seconds` and `limit` of `GET /api/v1/alerts/history`; ValueError says what is wrong."""
    unknown = sorted(set(query) - set(HISTORY_PARAMS))
    if unknown:
        raise ValueError(f"unknown parameter(s) {', '.join(unknown)}; use {', '.join(HISTORY_PARAMS)}")

    def bounded(name: str, default: int, top: int) -> int:
        text = query.get(name, str(default)).strip()
        if not text.isdigit() or not 1 <= int(text) <= top:
            raise ValueError(f"{name}: a whole number from 1 to {top}, got {text!r}")
        return int(text)

    slo = query.get("slo")
    if slo is not None and not slo.strip():
        raise ValueError("slo: an SLO name (leave it out for every SLO)")
    return slo, bounded("since_seconds", DEFAULT_SINCE_SECONDS, MAX_SINCE_SECONDS), bounded("limit", DEFAULT_LIMIT,
                                                                                          MAX_LIMIT)


def history_json(entries: Iterable[LogEntry]) -> list[dict]:
    """`StateStore.alert_history` rows (each transition followed by its deliveries) as the API lists them."""
    out: list[dict] = []
    for e in entries:
        if not e.receiver:
            out.append({"event": e.event, "at": rfc3339(e.at), "fingerprint": e.fingerprint,
                        "slo": e.labels.get("slo", ""), "alertname": e.labels.get("alertname", ""),
                        "tier": e.labels.get("tier", ""), "severity": e.labels.get("severity", ""),
                        "labels": e.labels, "summary": e.summary, "startsAt": rfc3339(e.starts_at),
                        "endsAt": rfc3339(e.ends_at) if e.ends_at else None, "muted": e.muted or None,
                        "deliveries": []})
        elif out and (out[-1]["fingerprint"], out[-1]["event"]) == (e.fingerprint, e.event):
            out[-1]["deliveries"].append({"receiver": e.receiver, "notificationId": e.notification_id,
                                          "status": e.delivery, "attempts": e.attempts, "error": e.error or None})
    return out
