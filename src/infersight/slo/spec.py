"""The user-facing SLO spec (`apiVersion: infersight/v1`, `kind: SLO`), validated by pydantic.

Only shape and local consistency are checked here; `model.compile_spec` turns a valid spec into the
internal model the evaluator uses. Errors name the file, the SLO and the field.
"""
from __future__ import annotations

import re
from collections.abc import Iterable
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from infersight.collectors.probe import metrics as probe_metrics
from infersight.cost.catalog import Rate
from infersight.rollups import threshold_problem
from infersight.slo.dimensions import HEALTH_COLUMNS, PROBE_ATTRIBUTES, ROLLUP_ATTRIBUTES

API_VERSION = "infersight/v1"

_DURATION = re.compile(r"^(\d+)(s|m|h|d|w)$")
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")


class SpecError(Exception):
    """An invalid spec file; the message names the file, the SLO and the field."""


def parse_duration(text: str) -> int:
    """'5m' -> 300. Units s, m, h, d, w (no months: use a calendar window)."""
    m = _DURATION.match(str(text).strip())
    if not m or int(m.group(1)) == 0:
        raise ValueError(f"invalid duration {text!r}: expected a positive integer with unit s, m, h, d or w")
    return int(m.group(1)) * _UNIT[m.group(2)]


def format_duration(seconds: int) -> str:
    """300 -> '5m'; days are not folded into weeks (30d stays 30d)."""
    for unit in ("d", "h", "m"):
        if seconds % _UNIT[unit] == 0:
            return f"{seconds // _UNIT[unit]}{unit}"
    return f"{seconds}s"


def _exact(value: Any) -> Any:
    """YAML floats become Decimals through their shortest repr (99.9 stays 99.9)."""
    if isinstance(value, float):
        return Decimal(repr(value))
    return value


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


def _dur(v: Any) -> str:
    parse_duration(v)
    return str(v)


class RatioSli(_Strict):
    """Availability: bad ÷ total requests from `infersight_requests_1m`."""

    filters: dict[str, str] = Field(default_factory=dict)


class LatencySli(_Strict):
    """Fraction of requests at or under `threshold_seconds`, from the latency histograms."""

    kind: Literal["e2e", "ttft", "tpot", "queue"] = "e2e"
    threshold_seconds: Decimal = Field(gt=0)
    filters: dict[str, str] = Field(default_factory=dict)

    _exact = field_validator("threshold_seconds", mode="before")(lambda cls, v: _exact(v))

    @model_validator(mode="after")
    def _boundary(self) -> LatencySli:
        problem = threshold_problem(self.kind, float(self.threshold_seconds))
        if problem:
            raise ValueError(f"threshold_seconds {self.threshold_seconds} {problem}")
        return self


class CostSli(_Strict):
    """Spend against a budget for the window, or USD per 1M tokens against a target."""

    metric: Literal["spend_usd", "usd_per_million_tokens"]
    budget_usd: Decimal | None = Field(None, gt=0)
    target_usd_per_million_tokens: Decimal | None = Field(None, gt=0)
    # Prices by model name; "*" is the default for models not listed.
    prices: dict[str, Rate]
    filters: dict[str, str] = Field(default_factory=dict)

    _exact = field_validator("budget_usd", "target_usd_per_million_tokens", mode="before")(
        lambda cls, v: _exact(v))

    @model_validator(mode="after")
    def _target(self) -> CostSli:
        if self.metric == "spend_usd" and self.budget_usd is None:
            raise ValueError("metric spend_usd needs budget_usd")
        if self.metric == "usd_per_million_tokens" and self.target_usd_per_million_tokens is None:
            raise ValueError("metric usd_per_million_tokens needs target_usd_per_million_tokens")
        return self


class AcceleratorHealthSli(_Strict):
    """Time slices: a minute is good when every GPU/NeuronCore of the group is ok and raised no XID."""

    hw_type: Literal["gpu", "accelerator"] | None = None
    filters: dict[str, str] = Field(default_factory=dict)


# Probe latency kinds -> the probe collector's histogram bounds (a threshold must be one of them).
PROBE_LATENCY_BOUNDS: dict[str, tuple[float, ...]] = {
    "ttft": probe_metrics.TTFT_BOUNDS, "e2e": probe_metrics.DURATION_BOUNDS, "tpot": probe_metrics.TPOT_BOUNDS,
    "time_to_headers": probe_metrics.DURATION_BOUNDS}


class ProbeAvailabilitySli(_Strict):
    """Probe availability: failed ÷ all probes (`infersight.probe.requests`, probe traffic only)."""

    filters: dict[str, str] = Field(default_factory=dict)


class ProbeLatencySli(_Strict):
    """Probes at or under `threshold_seconds` (probe TTFT, e2e, TPOT or time to headers).

    `failed_probes: bad` also counts every failed probe as one that missed the threshold ("answered
    within T"); `excluded` (default) reads successful probes only, the availability SLI counts failures.
    """

    kind: Literal["ttft", "e2e", "tpot", "time_to_headers"] = "ttft"
    threshold_seconds: Decimal = Field(gt=0)
    failed_probes: Literal["excluded", "bad"] = "excluded"
    filters: dict[str, str] = Field(default_factory=dict)

    _exact = field_validator("threshold_seconds", mode="before")(lambda cls, v: _exact(v))

    @model_validator(mode="after")
    def _boundary(self) -> ProbeLatencySli:
        bounds = PROBE_LATENCY_BOUNDS[self.kind]
        if float(self.threshold_seconds) not in bounds:
            raise ValueError(f"threshold_seconds {self.threshold_seconds} is not a bucket boundary of the probe's "
                             f"{self.kind} histogram, so good probes cannot be counted exactly; boundaries that "
                             f"exist: {list(bounds)}")
        return self


SLI_KINDS = ("ratio", "latency", "cost", "accelerator_health", "probe_availability", "probe_latency")
PROBE_KINDS = ("probe_availability", "probe_latency")


class SliSpec(_Strict):
    ratio: RatioSli | None = None
    latency: LatencySli | None = None
    cost: CostSli | None = None
    accelerator_health: AcceleratorHealthSli | None = None
    probe_availability: ProbeAvailabilitySli | None = None
    probe_latency: ProbeLatencySli | None = None

    @model_validator(mode="after")
    def _one(self) -> SliSpec:
        given = [k for k in SLI_KINDS if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(f"exactly one of {', '.join(SLI_KINDS)} is required (got {given})")
        return self

    @property
    def kind(self) -> str:
        return next(k for k in SLI_KINDS if getattr(self, k) is not None)

    @property
    def body(self) -> Any:
        return getattr(self, self.kind)


class WindowSpec(_Strict):
    """Either `rolling: 30d` or `calendar: month` (with a time zone)."""

    rolling: str | None = None
    calendar: Literal["week", "month"] | None = None
    time_zone: str = "UTC"

    _d = field_validator("rolling")(lambda cls, v: None if v is None else _dur(v))

    @model_validator(mode="after")
    def _one(self) -> WindowSpec:
        if (self.rolling is None) == (self.calendar is None):
            raise ValueError("exactly one of rolling or calendar is required")
        try:
            ZoneInfo(self.time_zone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {self.time_zone!r}") from None
        return self


class TierSpec(_Strict):
    """A multiwindow burn-rate tier: fire when both windows burn faster than the factor."""

    name: str
    severity: str
    long_window: str
    short_window: str
    # Either the burn-rate factor itself or the percent of the period's budget the long window may spend.
    factor: Decimal | None = Field(None, gt=0)
    budget_percent: Decimal | None = Field(None, gt=0, le=100)
    for_: str | None = Field(None, alias="for")

    _d = field_validator("long_window", "short_window")(lambda cls, v: _dur(v))
    _f = field_validator("for_")(lambda cls, v: None if v is None else _dur(v))
    _exact = field_validator("factor", "budget_percent", mode="before")(lambda cls, v: _exact(v))

    @model_validator(mode="after")
    def _check(self) -> TierSpec:
        if (self.factor is None) == (self.budget_percent is None):
            raise ValueError("exactly one of factor or budget_percent is required")
        if parse_duration(self.short_window) >= parse_duration(self.long_window):
            raise ValueError("short_window must be shorter than long_window")
        return self


class AlertingSpec(_Strict):
    name: str = "SLOBurnRate"
    # Burn-rate catalogue: auto picks the one whose period matches the window (30d, 28d, 7d).
    catalogue: Literal["auto", "google-30d", "google-28d", "google-7d", "none"] = "auto"
    # User-defined tiers, evaluated in addition to the catalogue's.
    tiers: tuple[TierSpec, ...] = ()
    budget_exhausted: bool = True
    no_data: bool = False
    # No events for this long makes the instance "no data" (default: the fastest tier's long window).
    no_data_after: str | None = None
    # A firing alert keeps firing this long after its condition last held ("0s": resolve at once);
    # default: the server's slo.keep_firing_for_seconds.
    keep_firing_for: str | None = None
    # The budget-exhausted alert needs this percent of the window covered (default: slo settings).
    budget_exhausted_min_coverage_percent: Decimal | None = Field(None, ge=0, le=100)
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)

    _d = field_validator("no_data_after")(lambda cls, v: None if v is None else _dur(v))
    _k = field_validator("keep_firing_for")(lambda cls, v: None if v is None else v if v in ("0", "0s") else _dur(v))
    _exact = field_validator("budget_exhausted_min_coverage_percent", mode="before")(lambda cls, v: _exact(v))


class TimesliceSpec(_Strict):
    window: str = "1m"
    # A slice is good when its own SLI reaches this percent (ratio/latency SLIs).
    target_percent: Decimal = Field(Decimal(100), gt=0, le=100)

    _exact = field_validator("target_percent", mode="before")(lambda cls, v: _exact(v))

    @field_validator("window")
    @classmethod
    def _minute(cls, v: str) -> str:
        if parse_duration(v) != 60:
            raise ValueError("only 1m time slices are supported (the rollups are per minute)")
        return v


class SloBody(_Strict):
    description: str = ""
    sli: SliSpec
    objective_percent: Decimal = Field(gt=0, lt=100)
    window: WindowSpec
    budgeting: Literal["occurrences", "timeslices"] = "occurrences"
    timeslice: TimesliceSpec = TimesliceSpec()
    group_by: tuple[str, ...] = ()
    # Below this many events in a tier's long window, that tier cannot fire (low traffic).
    min_events: int = Field(0, ge=0)
    alerting: AlertingSpec = AlertingSpec()

    _exact = field_validator("objective_percent", mode="before")(lambda cls, v: _exact(v))

    @model_validator(mode="after")
    def _attrs(self) -> SloBody:
        kind = self.sli.kind
        allowed = (tuple(HEALTH_COLUMNS) if kind == "accelerator_health" else PROBE_ATTRIBUTES if kind in PROBE_KINDS
                   else tuple(ROLLUP_ATTRIBUTES))
        for key in list(self.group_by) + list(getattr(self.sli.body, "filters", {})):
            if key not in allowed:
                raise ValueError(f"attribute {key!r} is not available to {kind} SLIs; use one of {list(allowed)}")
        if kind == "accelerator_health" and self.budgeting != "timeslices":
            raise ValueError("accelerator_health is a time-slice SLI: set budgeting: timeslices")
        if kind == "cost" and self.budgeting != "occurrences":
            raise ValueError("cost SLIs are budgeted by occurrences (spend), not timeslices")
        return self


class Metadata(_Strict):
    name: str
    labels: dict[str, str] = Field(default_factory=dict)

    @field_validator("name")
    @classmethod
    def _dns(cls, v: str) -> str:
        if not _NAME.match(v):
            raise ValueError("must be lowercase letters, digits and '-' (at most 63 characters)")
        return v


class SloDocument(_Strict):
    apiVersion: Literal["infersight/v1"]
    kind: Literal["SLO"]
    metadata: Metadata
    spec: SloBody


def _format(err: ValidationError, source: str, name: str) -> str:
    out = []
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"])
        msg = "unknown field" if e["type"] == "extra_forbidden" else e["msg"].removeprefix("Value error, ")
        out.append(f"{source}: slo '{name}': {loc}: {msg}")
    return "\n".join(out)


def parse_documents(data: Iterable[Any], source: str) -> list[SloDocument]:
    """Validate already-parsed YAML documents (each a mapping, or a list of them)."""
    docs: list[SloDocument] = []
    errors: list[str] = []
    flat: list[Any] = []
    for d in data:
        if d is None:
            continue
        flat.extend(d if isinstance(d, list) else [d])
    for i, d in enumerate(flat):
        if not isinstance(d, dict):
            errors.append(f"{source}: document {i}: must be a mapping")
            continue
        meta = d.get("metadata")
        name = meta.get("name", f"#{i}") if isinstance(meta, dict) else f"#{i}"
        if d.get("apiVersion") != API_VERSION:
            errors.append(f"{source}: slo '{name}': apiVersion: must be '{API_VERSION}' "
                          f"(got {d.get('apiVersion')!r}; OpenSLO documents: `infersight slo import-openslo`)")
            continue
        try:
            docs.append(SloDocument.model_validate(d))
        except ValidationError as err:
            errors.append(_format(err, source, name))
    if errors:
        raise SpecError("\n".join(errors))
    return docs


def load_file(path: Path) -> list[SloDocument]:
    try:
        data = list(yaml.safe_load_all(path.read_text()))
    except OSError as err:
        raise SpecError(f"{path}: cannot read: {err.strerror}") from None
    except yaml.YAMLError as err:
        raise SpecError(f"{path}: invalid YAML: {err}") from None
    return parse_documents(data, str(path))


def spec_files(paths: Iterable[Path]) -> list[Path]:
    """Files named directly, plus *.yaml/*.yml inside named folders (sorted)."""
    out: list[Path] = []
    for p in paths:
        p = Path(p)
        if p.is_dir():
            out.extend(sorted(q for q in p.iterdir() if q.suffix in (".yaml", ".yml") and q.is_file()))
        elif p.exists():
            out.append(p)
        else:
            raise SpecError(f"{p}: no such file or folder")
    return out
