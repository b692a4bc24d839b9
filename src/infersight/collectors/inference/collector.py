"""The `inference` collector: scrape inference servers' Prometheus endpoints, normalise, emit deltas.

How one endpoint is scraped is `scrape`; how each server's series map onto the normalised request
model is `servers/<kind>.py`; the metric list is `metrics`.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, field_validator

from infersight.collectors.base import Health, MetricSpec, Point, type_of
from infersight.collectors.inference.metrics import METRICS, ServerKind
from infersight.collectors.inference.scrape import ScrapeError, Scraper, Target, http_get
from infersight.config import CollectorConfig, Strict

log = logging.getLogger(__name__)


class Endpoint(Strict):
    """One server's metrics URL, its kind (detected from the metric names when `auto`), model and tenant."""

    url: str
    kind: Literal[ServerKind, "auto"] = "auto"
    # Served model name, for servers whose series carry none (TGI) or to override the label.
    model: str | None = None
    tenant: str | None = None
    # Rename the server's model names (matched case-insensitively), e.g. a `--served-model-name`
    # alias or a lower-cased id → the name the other sources of this model use.
    model_names: dict[str, str] = Field(default_factory=dict)

    @field_validator("url")
    @classmethod
    def _http(cls, v: str) -> str:
        parts = urlsplit(v)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError("must be an http(s) URL such as http://127.0.0.1:8000/metrics")
        return v


class InferenceConfig(CollectorConfig):
    """Options of the `inference` collector."""

    type: Literal["inference"] = "inference"
    endpoints: tuple[Endpoint, ...] = Field(min_length=1)
    # Tenant for every endpoint without its own `tenant`.
    tenant: str | None = None
    # A server label whose value is the tenant (e.g. `department`); wins over the static tenant.
    tenant_label: str | None = None


class InferenceCollector:
    """Scrapes each endpoint once per `collect()`.

    Counters and histograms are emitted as DELTA since the previous scrape of that endpoint
    (rollup views add deltas up), gauges as they are, plus `infersight.inference.endpoint.up`.
    `fetch(url, timeout) -> text` is the data source, injected for tests; it defaults to HTTP GET.
    """

    type = type_of(InferenceConfig)
    Config = InferenceConfig
    metrics: tuple[MetricSpec, ...] = METRICS
    needs_two_samples = True  # counters and histograms are deltas between two scrapes

    def __init__(self, endpoints: Iterable[Endpoint], tenant: str | None = None,
                 tenant_label: str | None = None, timeout_seconds: float = 5.0,
                 fetch: Callable[[str, float], str] = http_get,
                 clock: Callable[[], int] = time.time_ns) -> None:
        self._targets = [Target(ep.url, None if ep.kind == "auto" else ep.kind, ep.model, ep.tenant or tenant,
                                dict(ep.model_names)) for ep in endpoints]
        self._scraper = Scraper(fetch, timeout_seconds, clock, tenant_label)
        self._errors: dict[str, str] = {}  # url -> why its last scrape failed

    @classmethod
    def from_config(cls, cfg: InferenceConfig) -> InferenceCollector:
        """The collector over HTTP GET."""
        return cls(cfg.endpoints, cfg.tenant, cfg.tenant_label, cfg.timeout_seconds)

    def collect(self) -> Iterator[Point]:
        """Every endpoint's points and its `endpoint.up`; a failed scrape gives only `up` = 0."""
        for t in self._targets:
            try:
                points = self._scraper.scrape(t)
            except ScrapeError as err:
                (log.debug if t.url in self._errors else log.warning)("inference scrape failed: %s", err)
                self._errors[t.url] = str(err)
                yield self._scraper.up(t, 0)
                continue
            if self._errors.pop(t.url, None) is not None:
                log.warning("inference endpoint %s answers again", t.url)
            yield from points
            yield self._scraper.up(t, 1)

    def health(self) -> Health:
        """Down when no endpoint answered its last scrape; each endpoint that did not is a problem."""
        problems = tuple(f"endpoint down: {why}" for why in self._errors.values())
        if problems and len(self._errors) == len(self._targets):
            return Health(False, "endpoints_down", f"no endpoint answered ({len(problems)} configured)", problems)
        return Health(True, problems=problems)

    def close(self) -> None:
        """Nothing to release."""
        return None
