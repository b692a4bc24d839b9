"""SLO alert state as plain data: alerts, outbox notifications, silences and the alert log.

The alerting code (`alerts.py`, `notifiers.py`, `engine.py`) works on these records; only
`store.StateStore` knows how they are persisted, so the records import nothing from storage.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any


@dataclass
class AlertRecord:
    fingerprint: str
    labels: dict[str, str]
    annotations: dict[str, str]
    state: str  # pending | firing | resolved
    active_at: float
    starts_at: float | None = None
    ends_at: float | None = None


@dataclass
class Notification:
    id: str
    group_key: str
    receiver: str
    created_at: float
    firing: list[str]
    resolved: list[str]
    body: str
    status: str = "pending"  # pending | sent | failed
    attempts: int = 0
    next_attempt_at: float = 0.0
    last_error: str = ""


@dataclass
class LogEntry:
    """A row of the alert log: a transition (`receiver` '') or one receiver's delivery of it."""

    fingerprint: str
    event: str  # firing | resolved
    at: float  # the transition's time: starts_at when firing, ends_at when resolved
    labels: dict[str, str]
    summary: str
    starts_at: float | None
    ends_at: float | None
    receiver: str = ""
    notification_id: str = ""
    muted: str = ""  # transition: silenced | inhibited | ''
    delivery: str = ""  # delivery: pending | sent | failed
    attempts: int = 0
    error: str = ""


@dataclass
class Silence:
    id: str
    matchers: list[dict[str, Any]]  # {name, value, isRegex, isEqual} as in the Alertmanager API
    starts_at: float
    ends_at: float
    created_by: str = ""
    comment: str = ""

    def active(self, now: float) -> bool:
        return self.starts_at <= now < self.ends_at

    def state(self, now: float) -> str:
        return "active" if self.active(now) else ("pending" if now < self.starts_at else "expired")

    def matches(self, labels: dict[str, str]) -> bool:
        for m in self.matchers:
            v = labels.get(m["name"], "")
            hit = re.fullmatch(m["value"], v) is not None if m.get("isRegex") else v == m["value"]
            if hit != m.get("isEqual", True):
                return False
        return True
