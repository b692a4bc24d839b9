"""Persistent SLO alert state: alerts, the notification outbox and silences.

Every table is a ReplacingMergeTree keyed by id with a version column, read with FINAL: an update is
an insert. The outbox row of a notification is also the record of what its group last told its
receiver, so enqueueing and remembering are one insert (no duplicate page after a restart).
"""
from __future__ import annotations

import json
import threading
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from infersight.slo.dimensions import HEALTH, HEALTH_COLUMNS
from infersight.slo.records import AlertRecord, LogEntry, Notification, Silence
from infersight.storage.literals import string_literal as _s
from infersight.storage.schema import SchemaOptions, render
from infersight.storage.tables import LOW, STRING, Table, array

ALERTS = "infersight_slo_alerts"
NOTIFICATIONS = "infersight_slo_notifications"
SILENCES = "infersight_slo_silences"
LEASE = "infersight_slo_lease"
ALERT_LOG = "infersight_slo_alert_log"
_T64 = "DateTime64(3)"
# The columns of storage/sql/{hw_health_1m,slo_state,slo_lease,slo_alert_log}.sql (checked by
# tests/test_schema_contract.py).
TABLES = (
    Table(HEALTH, (("Minute", "DateTime"), *((c, LOW) for c in HEALTH_COLUMNS.values()), ("HwId", STRING),
                   ("HwSeries", STRING), ("StatusSamples", "UInt64"), ("BadStatus", "UInt8"),
                   ("ErrorsDelta", "Float64"), ("ErrorsSamples", "UInt64"), ("ErrorsMax", "Float64"),
                   ("ErrorsMin", "Float64"))),
    Table(ALERTS, (("Fingerprint", STRING), ("Labels", STRING), ("Annotations", STRING), ("State", LOW),
                   ("ActiveAt", _T64), ("StartsAt", _T64), ("EndsAt", _T64), ("Deleted", "UInt8"),
                   ("Version", "UInt64"))),
    Table(NOTIFICATIONS, (("Id", STRING), ("GroupKey", STRING), ("Receiver", LOW), ("CreatedAt", _T64),
                          ("Firing", array(STRING)), ("Resolved", array(STRING)), ("Body", STRING),
                          ("Status", LOW), ("Attempts", "UInt32"), ("NextAttemptAt", _T64), ("LastError", STRING),
                          ("Version", "UInt64"))),
    Table(SILENCES, (("Id", STRING), ("Matchers", STRING), ("StartsAt", _T64), ("EndsAt", _T64),
                     ("CreatedBy", STRING), ("Comment", STRING), ("Version", "UInt64"))),
    Table(LEASE, (("Name", LOW), ("Term", "UInt64"), ("Holder", STRING), ("ClaimedAt", _T64),
                  ("Renewal", "UInt64"), ("Time", "DateTime"))),
    Table(ALERT_LOG, (("Slo", LOW), ("At", _T64), ("Fingerprint", STRING), ("Event", LOW), ("Receiver", LOW),
                      ("NotificationId", STRING), ("AlertName", LOW), ("Tier", LOW), ("Severity", LOW),
                      ("Labels", STRING), ("Summary", STRING), ("StartsAt", _T64), ("EndsAt", _T64), ("Muted", LOW),
                      ("Delivery", LOW), ("Attempts", "UInt32"), ("Error", STRING), ("Version", "UInt64"))),
)


def ddl(opts: SchemaOptions) -> list[str]:
    """The health rollup with its views, the alert state tables, the engine's lease and the alert log
    (`storage/sql/{hw_health_1m,slo_state,slo_lease,slo_alert_log}.sql`)."""
    resource = {a: c for a, c in HEALTH_COLUMNS.items() if a != "hw.type"}
    return [*render("hw_health_1m", opts,
                    resource_dims=", ".join(f"ResourceAttributes['{a}'] AS {c}" for a, c in resource.items()),
                    resource_columns=", ".join(resource.values())),
            *render("slo_state", opts), *render("slo_lease", opts), *render("slo_alert_log", opts)]


_vlock = threading.Lock()
_last_version = 0


def _version() -> int:
    """Strictly increasing across calls and restarts (wall-clock nanoseconds, bumped on ties)."""
    global _last_version
    with _vlock:
        _last_version = max(time.time_ns(), _last_version + 1)
        return _last_version


def floor_version(seen: int) -> None:
    """Later versions exceed `seen` (the store's newest): another server's clock may run ahead of ours."""
    global _last_version
    with _vlock:
        _last_version = max(_last_version, seen)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _t(seconds: float | None) -> str:
    """Milliseconds as `notifiers.rfc3339` shows them (microseconds rounded, then cut), so a stored time reads
    back as the payloads and the API spelled it."""
    ms = (datetime.fromtimestamp(seconds or 0, UTC) - _EPOCH) // timedelta(milliseconds=1)
    return f"fromUnixTimestamp64Milli(toInt64({ms}))"


def _arr(items) -> str:
    return "[" + ", ".join(_s(i) for i in items) + "]"


def _ms(v: Any) -> float:
    return int(v) / 1000


class StateStore:
    """Reads and writes the SLO tables through the `Storage` interface (chDB or ClickHouse)."""

    def __init__(self, storage) -> None:
        self.storage = storage
        self.db = f"`{storage.database}`"
        # On a cluster the tables are Distributed fronts: DELETE runs on the `_local` tables ON CLUSTER.
        self.cluster: str | None = getattr(storage, "cluster", None)

    def floor_versions(self) -> None:
        """Continue above the newest version stored, whoever wrote it (a take-over by another server)."""
        rows = self.storage.query(" UNION ALL ".join(
            f"SELECT max(Version) AS v FROM {self.db}.`{t}`" for t in (ALERTS, NOTIFICATIONS, SILENCES)))
        floor_version(max((int(r["v"]) for r in rows), default=0))

    # alerts
    def save_alerts(self, records: list[AlertRecord], deleted: Sequence[AlertRecord] = ()) -> None:
        rows = []
        for r, d in [(r, 0) for r in records] + [(r, 1) for r in deleted]:
            rows.append(f"({_s(r.fingerprint)}, {_s(json.dumps(r.labels, sort_keys=True))}, "
                        f"{_s(json.dumps(r.annotations, sort_keys=True))}, {_s(r.state)}, {_t(r.active_at)}, "
                        f"{_t(r.starts_at)}, {_t(r.ends_at)}, {d}, {_version()})")
        if rows:
            self.storage.execute(f"INSERT INTO {self.db}.`{ALERTS}` (Fingerprint, Labels, Annotations, State, "
                                 f"ActiveAt, StartsAt, EndsAt, Deleted, Version) VALUES " + ", ".join(rows))

    def load_alerts(self) -> list[AlertRecord]:
        rows = self.storage.query(
            f"SELECT Fingerprint, Labels, Annotations, State, toUnixTimestamp64Milli(ActiveAt) AS a, "
            f"toUnixTimestamp64Milli(StartsAt) AS s, toUnixTimestamp64Milli(EndsAt) AS e "
            f"FROM {self.db}.`{ALERTS}` FINAL WHERE Deleted = 0 ORDER BY Fingerprint")
        return [AlertRecord(r["Fingerprint"], json.loads(r["Labels"]), json.loads(r["Annotations"]), r["State"],
                            _ms(r["a"]), _ms(r["s"]) or None, _ms(r["e"]) or None) for r in rows]

    # outbox
    def save_notifications(self, items: list[Notification]) -> None:
        rows = []
        for n in items:
            rows.append(f"({_s(n.id)}, {_s(n.group_key)}, {_s(n.receiver)}, {_t(n.created_at)}, {_arr(n.firing)}, "
                        f"{_arr(n.resolved)}, {_s(n.body)}, {_s(n.status)}, {n.attempts}, "
                        f"{_t(n.next_attempt_at)}, {_s(n.last_error[:1000])}, {_version()})")
        if rows:
            self.storage.execute(f"INSERT INTO {self.db}.`{NOTIFICATIONS}` (Id, GroupKey, Receiver, CreatedAt, "
                                 f"Firing, Resolved, Body, Status, Attempts, NextAttemptAt, LastError, Version) "
                                 f"VALUES " + ", ".join(rows))

    def _notifications(self, where: str) -> list[Notification]:
        rows = self.storage.query(
            f"SELECT Id, GroupKey, Receiver, toUnixTimestamp64Milli(CreatedAt) AS c, Firing, Resolved, Body, "
            f"Status, Attempts, toUnixTimestamp64Milli(NextAttemptAt) AS n, LastError "
            f"FROM {self.db}.`{NOTIFICATIONS}` FINAL WHERE {where} ORDER BY CreatedAt, Id")
        return [Notification(r["Id"], r["GroupKey"], r["Receiver"], _ms(r["c"]), list(r["Firing"]),
                             list(r["Resolved"]), r["Body"], r["Status"], int(r["Attempts"]), _ms(r["n"]),
                             r["LastError"]) for r in rows]

    def pending_notifications(self) -> list[Notification]:
        return self._notifications("Status = 'pending'")

    def recent_notifications(self, limit: int = 100) -> list[Notification]:
        return self._notifications(f"Id IN (SELECT Id FROM {self.db}.`{NOTIFICATIONS}` "
                                   f"ORDER BY CreatedAt DESC LIMIT {int(limit)})")

    def prune_notifications(self, before: float) -> None:
        """Delete settled notifications created before `before`, except each group's newest.

        The newest one per group is that group's memory of what its receiver was told; pending ones
        are still to be delivered. Everything else is history that would otherwise grow forever.
        """
        target = f"`{NOTIFICATIONS}_local` ON CLUSTER `{self.cluster}`" if self.cluster else f"`{NOTIFICATIONS}`"
        self.storage.execute(
            f"DELETE FROM {self.db}.{target} WHERE CreatedAt < {_t(before)} AND Id IN ("
            f"SELECT Id FROM {self.db}.`{NOTIFICATIONS}` FINAL WHERE Status != 'pending') AND Id NOT IN ("
            f"SELECT argMax(Id, (CreatedAt, Id)) FROM {self.db}.`{NOTIFICATIONS}` GROUP BY GroupKey)")

    def last_per_group(self) -> dict[str, Notification]:
        """The newest notification of every group: what that group's receiver was last told."""
        latest = self._notifications(f"Id IN (SELECT argMax(Id, (CreatedAt, Id)) FROM {self.db}.`{NOTIFICATIONS}` "
                                     f"GROUP BY GroupKey)")
        return {n.group_key: n for n in latest}

    # silences
    def save_silence(self, s: Silence) -> None:
        self.storage.execute(
            f"INSERT INTO {self.db}.`{SILENCES}` (Id, Matchers, StartsAt, EndsAt, CreatedBy, Comment, Version) "
            f"VALUES ({_s(s.id)}, {_s(json.dumps(s.matchers))}, {_t(s.starts_at)}, {_t(s.ends_at)}, "
            f"{_s(s.created_by)}, {_s(s.comment)}, {_version()})")

    def load_silences(self) -> list[Silence]:
        rows = self.storage.query(
            f"SELECT Id, Matchers, toUnixTimestamp64Milli(StartsAt) AS s, toUnixTimestamp64Milli(EndsAt) AS e, "
            f"CreatedBy, Comment FROM {self.db}.`{SILENCES}` FINAL ORDER BY StartsAt, Id")
        return [Silence(r["Id"], json.loads(r["Matchers"]), _ms(r["s"]), _ms(r["e"]), r["CreatedBy"], r["Comment"])
                for r in rows]

    # alert log
    def save_log(self, entries: Sequence[LogEntry]) -> None:
        """One insert for a batch of log rows (a delivery row again with its newer result replaces it)."""
        rows = []
        for e in entries:
            lb = e.labels
            rows.append(f"({_s(lb.get('slo', ''))}, {_t(e.at)}, {_s(e.fingerprint)}, {_s(e.event)}, {_s(e.receiver)}, "
                        f"{_s(e.notification_id)}, {_s(lb.get('alertname', ''))}, {_s(lb.get('tier', ''))}, "
                        f"{_s(lb.get('severity', ''))}, {_s(json.dumps(lb, sort_keys=True))}, {_s(e.summary)}, "
                        f"{_t(e.starts_at)}, {_t(e.ends_at)}, {_s(e.muted)}, {_s(e.delivery)}, {e.attempts}, "
                        f"{_s(e.error[:1000])}, {_version()})")
        if rows:
            self.storage.execute(f"INSERT INTO {self.db}.`{ALERT_LOG}` (Slo, At, Fingerprint, Event, Receiver, "
                                 f"NotificationId, AlertName, Tier, Severity, Labels, Summary, StartsAt, EndsAt, "
                                 f"Muted, Delivery, Attempts, Error, Version) VALUES " + ", ".join(rows))

    def _log(self, where: str, limit: int | None = None) -> list[LogEntry]:
        rows = self.storage.query(
            f"SELECT Fingerprint, Event, toUnixTimestamp64Milli(At) AS at, Labels, Summary, "
            f"toUnixTimestamp64Milli(StartsAt) AS s, toUnixTimestamp64Milli(EndsAt) AS e, Receiver, NotificationId, "
            f"Muted, Delivery, Attempts, Error FROM {self.db}.`{ALERT_LOG}` FINAL WHERE {where} "
            f"ORDER BY At DESC, Fingerprint, Event, Receiver, NotificationId"
            + (f" LIMIT {int(limit)}" if limit else ""))
        return [LogEntry(r["Fingerprint"], r["Event"], _ms(r["at"]), json.loads(r["Labels"]), r["Summary"],
                         _ms(r["s"]) or None, _ms(r["e"]) or None, r["Receiver"], r["NotificationId"], r["Muted"],
                         r["Delivery"], int(r["Attempts"]), r["Error"]) for r in rows]

    def alert_history(self, since: float, limit: int, slo: str | None = None) -> list[LogEntry]:
        """The newest `limit` transitions at or after `since` (of one SLO), each followed by its deliveries."""
        where = f"At >= {_t(since)}" + (f" AND Slo = {_s(slo)}" if slo is not None else "")
        moves = self._log(f"{where} AND Receiver = ''", limit)
        if not moves:
            return []
        keys = {(m.fingerprint, m.event, m.at) for m in moves}
        sent = self._log(f"{where} AND Receiver != '' AND has({_arr(sorted({k[0] for k in keys}))}, Fingerprint) "
                         f"AND At >= {_t(min(k[2] for k in keys))}")
        out = []
        for m in moves:
            out.append(m)
            out += [d for d in sent if (d.fingerprint, d.event, d.at) == (m.fingerprint, m.event, m.at)]
        return out

    def log_deliveries(self, notification_ids: Sequence[str]) -> list[LogEntry]:
        """The delivery rows of these notifications (those still in the outbox, after a restart)."""
        if not notification_ids:
            return []
        return self._log(f"has({_arr(sorted(set(notification_ids)))}, NotificationId)")
