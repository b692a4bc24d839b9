"""SLO section of the configuration (owned by the SLO engine): specs, receivers, routing, delivery."""
from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ReceiverSettings(_Strict):
    """Where notifications go. Every URL is configurable (PagerDuty's and Slack's included)."""

    name: str
    type: Literal["webhook", "alertmanager", "pagerduty", "slack"]
    # webhook: the receiver URL; alertmanager: its base URL (POST {url}/api/v2/alerts);
    # pagerduty: the Events API v2 enqueue URL; slack: the incoming-webhook URL.
    url: str | None = None
    # webhook: HMAC-SHA256 key for the X-Infersight-Signature header.
    secret: SecretStr | None = None
    # pagerduty: integration (routing) key.
    routing_key: SecretStr | None = None
    headers: dict[str, SecretStr] = Field(default_factory=dict)
    timeout_seconds: float = Field(10.0, gt=0)
    # webhook: at most this many alerts per payload (0 = all); the rest count in truncatedAlerts.
    max_alerts: int = Field(0, ge=0)
    # alertmanager: firing alerts are pushed again this often and carry endsAt = now + 4 × this.
    resend_interval_seconds: float = Field(60.0, gt=0)

    @model_validator(mode="after")
    def _needs(self) -> ReceiverSettings:
        if self.type == "pagerduty":
            if self.routing_key is None:
                raise ValueError(f"receiver '{self.name}': pagerduty needs routing_key")
        elif not self.url:
            raise ValueError(f"receiver '{self.name}': {self.type} needs url")
        return self


class RouteSettings(_Strict):
    """A routing node: alerts whose labels match go to `receiver`, grouped by `group_by` labels."""

    receiver: str | None = None
    match: dict[str, str] = Field(default_factory=dict)
    match_re: dict[str, str] = Field(default_factory=dict)
    group_by: tuple[str, ...] | None = None
    group_wait_seconds: float | None = Field(None, ge=0)
    group_interval_seconds: float | None = Field(None, gt=0)
    repeat_interval_seconds: float | None = Field(None, gt=0)
    # Keep matching the next sibling routes after this one matched.
    continue_: bool = Field(False, alias="continue")
    routes: tuple[RouteSettings, ...] = ()


class DeliverySettings(_Strict):
    max_attempts: int = Field(10, ge=1)
    backoff_initial_seconds: float = Field(1.0, gt=0)
    backoff_max_seconds: float = Field(300.0, gt=0)


class SloSettings(_Strict):
    # SLO spec files or folders of them (also `infersight server --slo PATH`, repeatable).
    paths: tuple[Path, ...] = ()
    interval_seconds: float = Field(30.0, gt=0)
    receivers: tuple[ReceiverSettings, ...] = ()
    route: RouteSettings = RouteSettings()
    # While a faster tier (page) fires for an SLO instance, suppress its slower tiers (ticket).
    inhibit_slower_tiers: bool = True
    delivery: DeliverySettings = DeliverySettings()
    # Settled notifications older than this are deleted (each group's newest is always kept).
    outbox_retention_days: float = Field(7.0, gt=0)
    # Backlink put in webhook payloads (externalURL) and alerts' generatorURL.
    external_url: str = "http://127.0.0.1:4318"
    # Resolve hysteresis: a firing alert whose condition stops holding keeps firing this long after the
    # last evaluation in which it held (Prometheus' keep_firing_for); an SLO's alerting.keep_firing_for wins.
    keep_firing_for_seconds: float = Field(300.0, ge=0)
    # An SLO that never had data in its window raises its no-data alert only after the engine has
    # watched it this long (default: the SLO's own no_data_after). One that had data and lost it: at once.
    no_data_grace_seconds: float | None = Field(None, ge=0)
    # The budget-exhausted alert waits until this percent of the budget window lies after the window's
    # first data (or until so much is spent that a perfect rest of the window could not save it);
    # an SLO's alerting.budget_exhausted_min_coverage_percent wins. See docs/slo.md.
    budget_exhausted_min_coverage_percent: float = Field(50.0, ge=0, le=100)

    @model_validator(mode="after")
    def _receivers_exist(self) -> SloSettings:
        names = [r.name for r in self.receivers]
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise ValueError(f"receivers: duplicate name(s) {sorted(dup)}")

        def walk(route: RouteSettings, where: str) -> None:
            if route.receiver is not None and route.receiver not in names:
                raise ValueError(f"{where}.receiver: unknown receiver '{route.receiver}' (have {names})")
            for i, child in enumerate(route.routes):
                walk(child, f"{where}.routes.{i}")

        walk(self.route, "route")
        return self
