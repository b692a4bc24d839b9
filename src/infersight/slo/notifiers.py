"""Receivers: render a group flush into each format on-call already uses, and deliver it.

Bodies are rendered when the notification is enqueued (stored in the outbox as sent); secrets
(PagerDuty routing key, webhook HMAC key, headers) are added only when sending.
"""
from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime
from typing import TypeVar

import aiohttp

from infersight.slo.alerts import Flush, fingerprint
from infersight.slo.records import AlertRecord
from infersight.slo.settings import ReceiverSettings

ZERO_TIME = "0001-01-01T00:00:00Z"
SIGNATURE_HEADER = "X-Infersight-Signature"
PAGERDUTY_URL = "https://events.pagerduty.com/v2/enqueue"
_T = TypeVar("_T")


def rfc3339(t: float | None) -> str:
    if not t:
        return ZERO_TIME
    dt = datetime.fromtimestamp(t, UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


def _common(dicts: list[dict[str, str]]) -> dict[str, str]:
    if not dicts:
        return {}
    out = dict(dicts[0])
    for d in dicts[1:]:
        out = {k: v for k, v in out.items() if d.get(k) == v}
    return dict(sorted(out.items()))


def generator_url(external_url: str, rec: AlertRecord) -> str:
    return f"{external_url.rstrip('/')}/api/v1/slos?slo={rec.labels.get('slo', '')}"


def webhook_v4(flush: Flush, receiver: ReceiverSettings, external_url: str) -> dict:
    """The Alertmanager webhook payload, version 4, in Alertmanager's own key order."""
    alerts = [(r, "firing") for r in flush.firing] + [(r, "resolved") for r in flush.resolved]
    truncated = 0
    if receiver.max_alerts and len(alerts) > receiver.max_alerts:
        truncated = len(alerts) - receiver.max_alerts
        alerts = alerts[:receiver.max_alerts]
    return {
        "receiver": flush.receiver,
        "status": "firing" if flush.firing else "resolved",
        "alerts": [{
            "status": status,
            "labels": dict(sorted(r.labels.items())),
            "annotations": dict(sorted(r.annotations.items())),
            "startsAt": rfc3339(r.starts_at),
            "endsAt": rfc3339(r.ends_at) if status == "resolved" else ZERO_TIME,
            "generatorURL": generator_url(external_url, r),
            "fingerprint": r.fingerprint,
        } for r, status in alerts],
        "groupLabels": dict(sorted(flush.group_labels.items())),
        "commonLabels": _common([r.labels for r, _ in alerts]),
        "commonAnnotations": _common([r.annotations for r, _ in alerts]),
        "externalURL": external_url,
        "version": "4",
        "groupKey": flush.group_key,
        "truncatedAlerts": truncated,
    }


def alertmanager_v2(flush: Flush, receiver: ReceiverSettings, external_url: str, now: float) -> list[dict]:
    """POST /api/v2/alerts body: firing alerts stay open for 4 resend intervals unless pushed again."""
    out = []
    for r in flush.firing:
        out.append({"labels": r.labels, "annotations": r.annotations, "startsAt": rfc3339(r.starts_at),
                    "endsAt": rfc3339(now + 4 * receiver.resend_interval_seconds),
                    "generatorURL": generator_url(external_url, r)})
    for r in flush.resolved:
        out.append({"labels": r.labels, "annotations": r.annotations, "startsAt": rfc3339(r.starts_at),
                    "endsAt": rfc3339(r.ends_at), "generatorURL": generator_url(external_url, r)})
    return out


_PD_SEVERITY = {"page": "critical", "critical": "critical", "ticket": "warning", "warning": "warning",
                "error": "error", "info": "info"}


def dedup_key(group_key: str) -> str:
    return hashlib.sha256(group_key.encode()).hexdigest()


def pagerduty(flush: Flush, receiver: ReceiverSettings, external_url: str, now: float) -> dict:
    """Events API v2: one incident per group (dedup_key from the group key); routing_key added at send."""
    if not flush.firing:
        return {"dedup_key": dedup_key(flush.group_key), "event_action": "resolve"}
    first = flush.firing[0]
    severities = [_PD_SEVERITY.get(r.labels.get("severity", ""), "error") for r in flush.firing]
    order = ["critical", "error", "warning", "info"]
    return {
        "payload": {
            "summary": (first.annotations.get("summary") or first.labels.get("alertname", "SLO alert"))[:1024]
            + (f" (+{len(flush.firing) - 1} more)" if len(flush.firing) > 1 else ""),
            "timestamp": rfc3339(now),
            "source": first.labels.get("slo", "infersight"),
            "severity": min(severities, key=order.index),
            "component": first.labels.get("slo", ""),
            "group": ",".join(f"{k}={v}" for k, v in sorted(flush.group_labels.items())),
            "class": first.labels.get("alertname", ""),
            "custom_details": {"firing": [{"labels": r.labels, "annotations": r.annotations}
                                          for r in flush.firing]},
        },
        "dedup_key": dedup_key(flush.group_key),
        "event_action": "trigger",
        "client": "infersight",
        "client_url": external_url,
    }


def slack(flush: Flush, receiver: ReceiverSettings, external_url: str) -> dict:
    status = f"FIRING:{len(flush.firing)}" if flush.firing else "RESOLVED"
    title = ", ".join(f"{k}={v}" for k, v in sorted(flush.group_labels.items()))
    lines = [f"[{status}] {title}"]
    for r in flush.firing:
        lines.append(f"• {r.annotations.get('summary', r.labels.get('alertname', ''))} "
                     f"(burn {r.annotations.get('burn_rate_long', 'n/a')}×, exhaustion in "
                     f"{r.annotations.get('time_to_exhaustion', 'n/a')})")
    for r in flush.resolved:
        lines.append(f"• resolved: {r.annotations.get('summary', r.labels.get('alertname', ''))}")
    lines.append(f"<{external_url}|infersight>")
    return {"text": "\n".join(lines)}


def render(flush: Flush, receiver: ReceiverSettings, external_url: str, now: float) -> str:
    body: dict | list[dict]
    if receiver.type == "webhook":
        body = webhook_v4(flush, receiver, external_url)
    elif receiver.type == "alertmanager":
        body = alertmanager_v2(flush, receiver, external_url, now)
    elif receiver.type == "pagerduty":
        body = pagerduty(flush, receiver, external_url, now)
    else:
        body = slack(flush, receiver, external_url)
    return json.dumps(body, separators=(",", ":"))


def sign(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class DeliveryError(Exception):
    pass


def _needs(value: _T | None, receiver: ReceiverSettings, key: str) -> _T:
    """A setting ReceiverSettings' validator requires for this receiver type."""
    if value is None:
        raise DeliveryError(f"receiver '{receiver.name}': {receiver.type} needs {key}")
    return value


async def send(session: aiohttp.ClientSession, receiver: ReceiverSettings, body: str) -> None:
    """POST one rendered body; raises DeliveryError unless the receiver answers 2xx."""
    if receiver.type == "pagerduty":
        url = receiver.url or PAGERDUTY_URL
        data = json.loads(body)
        data = {"routing_key": _needs(receiver.routing_key, receiver, "routing_key").get_secret_value(), **data}
        body = json.dumps(data, separators=(",", ":"))
    else:
        url = _needs(receiver.url, receiver, "url")
        if receiver.type == "alertmanager":
            url = url.rstrip("/") + "/api/v2/alerts"
    raw = body.encode()
    headers = {"Content-Type": "application/json", "User-Agent": "infersight-slo"}
    headers.update({k: v.get_secret_value() for k, v in receiver.headers.items()})
    if receiver.type == "webhook" and receiver.secret is not None:
        headers[SIGNATURE_HEADER] = sign(receiver.secret.get_secret_value(), raw)
    try:
        async with session.post(url, data=raw, headers=headers,
                                timeout=aiohttp.ClientTimeout(total=receiver.timeout_seconds)) as resp:
            if resp.status // 100 != 2:
                text = (await resp.text())[:300]
                raise DeliveryError(f"HTTP {resp.status} from {url}: {text}")
    except (aiohttp.ClientError, TimeoutError, OSError) as err:
        raise DeliveryError(f"{type(err).__name__} posting to {url}: {err}") from None


async def send_test(session: aiohttp.ClientSession, receiver: ReceiverSettings, external_url: str,
                    now: float) -> None:
    """Send one synthetic firing alert straight to `receiver` (no outbox) to verify routing end to end."""
    labels = {"alertname": "InfersightTestAlert", "slo": "notify-test", "severity": "test", "tier": "test"}
    rec = AlertRecord(fingerprint(labels), labels,
                      {"summary": "Test notification from infersight: routing to this receiver works"},
                      "firing", now, now)
    flush = Flush('{}:{alertname="InfersightTestAlert"}', receiver.name, {"alertname": "InfersightTestAlert"},
                  [rec], [])
    await send(session, receiver, render(flush, receiver, external_url, now))
