"""The `inference` collector: scrape inference servers' Prometheus endpoints, normalise, emit deltas."""
from __future__ import annotations

import json
import logging
import time
import urllib.request
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import urlsplit

from prometheus_client.parser import text_string_to_metric_families
from pydantic import Field, field_validator

from infersight.collectors.base import MetricSpec, Point
from infersight.collectors.inference import sglang, tgi, triton, vllm
from infersight.collectors.inference.delta import Delta, DeltaTracker
from infersight.collectors.inference.model import (
    ADDRESS, KINDS, METRICS, SERVER_KIND, TENANT, UP, Context, Reading, ServerKind,
)
from infersight.config import CollectorConfig, Strict

log = logging.getLogger(__name__)

SERVERS = {"vllm": vllm, "tgi": tgi, "triton": triton, "sglang": sglang}
MAX_BODY_BYTES = 64 * 1024 * 1024
START_TIME = "process_start_time_seconds"
# Sample (and HELP/TYPE) names of the families each server module reads.
_WANTED = {kind: frozenset(f + suffix for f in (*mod.FAMILIES, START_TIME)
                           for suffix in ("", "_total", "_bucket", "_sum", "_count"))
           for kind, mod in SERVERS.items()}


class ScrapeError(Exception):
    """An endpoint could not be scraped or understood; the message names the URL."""


class Endpoint(Strict):
    url: str
    kind: Literal["vllm", "tgi", "triton", "sglang", "auto"] = "auto"
    # Served model name, for servers whose series carry none (TGI) or to override the label.
    model: str | None = None
    tenant: str | None = None

    @field_validator("url")
    @classmethod
    def _http(cls, v: str) -> str:
        parts = urlsplit(v)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError("must be an http(s) URL such as http://127.0.0.1:8000/metrics")
        return v


class InferenceConfig(CollectorConfig):
    type: Literal["inference"] = "inference"
    endpoints: tuple[Endpoint, ...] = Field(min_length=1)
    # Tenant for every endpoint without its own `tenant`.
    tenant: str | None = None
    # A server label whose value is the tenant (e.g. `department`); wins over the static tenant.
    tenant_label: str | None = None


def detect_kind(names: Iterable[str]) -> ServerKind | None:
    """The server kind from its metric family names (`vllm:`, `sglang:`, `tgi_`, `nv_inference_`)."""
    for name in names:
        for kind in KINDS:
            if name.startswith(SERVERS[kind].PREFIX):
                return kind
    return None


def prefilter(text: str, wanted: frozenset[str]) -> str:
    """Keep only the lines of wanted families: parsing costs per line and big servers expose
    many families (and `_created` series) the normalised model does not use."""
    keep = []
    for line in text.splitlines():
        if line.startswith("#"):
            parts = line.split(None, 3)
            if len(parts) >= 3 and parts[2] in wanted:
                keep.append(line)
        elif line.split("{", 1)[0].split(" ", 1)[0] in wanted:
            keep.append(line)
    keep.append("")
    return "\n".join(keep)


def http_get(url: str, timeout: float, max_bytes: int = MAX_BODY_BYTES) -> str:
    """GET without proxies (servers are node-local) and with a body size cap."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    req = urllib.request.Request(url, headers={"Accept": "text/plain;version=0.0.4"})
    try:
        with opener.open(req, timeout=timeout) as resp:
            body = resp.read(max_bytes + 1)
    except Exception as err:
        raise ScrapeError(f"{url}: {err}") from None
    if len(body) > max_bytes:
        raise ScrapeError(f"{url}: response larger than {max_bytes} bytes")
    return body.decode("utf-8", "replace")


@dataclass
class _Target:
    endpoint: Endpoint
    address: str
    kind: ServerKind | None
    tracker: DeltaTracker = field(default_factory=DeltaTracker)
    last_ns: int | None = None
    ctx: Context | None = None


class InferenceCollector:
    """Scrapes each endpoint once per `collect()`.

    Counters and histograms are emitted as DELTA since the previous scrape of that endpoint
    (rollup views add deltas up), gauges as they are, plus `infersight.inference.endpoint.up`.
    `fetch(url, timeout) -> text` is the data source, injected for tests; it defaults to HTTP GET.
    """

    type = "inference"
    Config = InferenceConfig
    metrics: tuple[MetricSpec, ...] = METRICS

    def __init__(self, endpoints: Iterable[Endpoint], tenant: str | None = None,
                 tenant_label: str | None = None, timeout_seconds: float = 5.0,
                 fetch: Callable[[str, float], str] = http_get,
                 clock: Callable[[], int] = time.time_ns) -> None:
        self._targets = [_Target(ep, urlsplit(ep.url).netloc, None if ep.kind == "auto" else ep.kind)
                         for ep in endpoints]
        self._tenant = tenant
        self._tenant_label = tenant_label
        self._timeout = timeout_seconds
        self._fetch = fetch
        self._clock = clock

    @classmethod
    def from_config(cls, cfg: InferenceConfig) -> InferenceCollector:
        return cls(cfg.endpoints, cfg.tenant, cfg.tenant_label, cfg.timeout_seconds)

    def collect(self) -> Iterator[Point]:
        for t in self._targets:
            try:
                points = self._scrape(t)
            except ScrapeError as err:
                log.warning("inference scrape failed: %s", err)
                yield self._up(t, 0)
                continue
            yield from points
            yield self._up(t, 1)

    def close(self) -> None:
        return None

    def _up(self, t: _Target, value: int) -> Point:
        attrs = {ADDRESS: t.address}
        if t.kind:
            attrs[SERVER_KIND] = t.kind
        tenant = t.endpoint.tenant or self._tenant
        if tenant:
            attrs[TENANT] = tenant
        return UP.point(value, attrs, time_ns=self._clock())

    def _context(self, t: _Target, kind: ServerKind) -> Context:
        if t.ctx is not None:
            return t.ctx
        model = t.endpoint.model
        if model is None and kind == "tgi":
            model = self._tgi_model(t.endpoint.url)
        ctx = Context(kind, t.address, model, t.endpoint.tenant or self._tenant, self._tenant_label)
        if model is not None or kind != "tgi":  # an unanswered TGI /info is asked again next scrape
            t.ctx = ctx
        return ctx

    def _tgi_model(self, metrics_url: str) -> str | None:
        """TGI names its model only in `GET /info`; a failure leaves the model unknown."""
        parts = urlsplit(metrics_url)
        try:
            return json.loads(self._fetch(f"{parts.scheme}://{parts.netloc}/info", self._timeout))["model_id"]
        except (ScrapeError, ValueError, KeyError, TypeError) as err:
            log.warning("TGI at %s: model unknown (%s); set `model` on the endpoint", parts.netloc, err)
            return None

    def _scrape(self, t: _Target) -> list[Point]:
        text = self._fetch(t.endpoint.url, self._timeout)
        now = self._clock()
        if t.kind is not None:
            text = prefilter(text, _WANTED[t.kind])
        try:
            families = {f.name: f for f in text_string_to_metric_families(text)}
        except Exception as err:  # the parser raises ValueError and friends on malformed lines
            raise ScrapeError(f"{t.endpoint.url}: malformed exposition: {err}") from None
        if t.kind is None:
            t.kind = detect_kind(families)
            if t.kind is None:
                raise ScrapeError(f"{t.endpoint.url}: cannot detect the server kind from its metric names; "
                                  "set `kind` (vllm, tgi, triton or sglang)")
        ctx = self._context(t, t.kind)
        readings = list(SERVERS[t.kind].readings(families, ctx))
        start = families.get(START_TIME)
        start_time = start.samples[0].value if start is not None and start.samples else None
        cumulative = [r for r in readings if r.spec.kind != "gauge"]
        deltas = t.tracker.update(cumulative, start_time)
        points = [r.spec.point(r.value, r.attrs, time_ns=now) for r in readings if r.spec.kind == "gauge"]
        if t.last_ns is not None:
            points.extend(_delta_points(deltas, t.last_ns, now))
        t.last_ns = now
        return points


def _delta_points(deltas: list[Delta], start_ns: int, now_ns: int) -> list[Point]:
    """Sum deltas of server series that map onto the same normalised series (e.g. stop + length)."""
    merged: dict[tuple, list] = {}
    for d in deltas:
        r: Reading = d.reading
        key = (r.spec.name, tuple(sorted(r.attrs.items())), r.bounds)
        m = merged.get(key)
        if m is None:
            merged[key] = [r, d.value, d.count, list(d.buckets)]
        else:
            m[1] += d.value
            m[2] += d.count
            m[3] = [a + b for a, b in zip(m[3], d.buckets, strict=True)]
    out = []
    for r, value, count, buckets in merged.values():
        if r.spec.kind == "histogram":
            out.append(r.spec.point(value, r.attrs, temporality="delta", time_ns=now_ns, start_time_ns=start_ns,
                                    bounds=r.bounds, bucket_counts=tuple(int(round(b)) for b in buckets),
                                    count=int(round(count))))
        else:
            out.append(r.spec.point(value, r.attrs, temporality="delta", time_ns=now_ns, start_time_ns=start_ns))
    return out
