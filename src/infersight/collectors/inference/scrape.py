"""Scraping one inference-server endpoint: fetch, keep only the families its dialect reads, parse,
map to `Reading`s, and turn cumulative readings into delta points since the previous scrape.

`fetch(url, timeout) -> text` is injected (tests pass recorded expositions); `http_get` is the
real one. A failed or unreadable scrape raises `ScrapeError`, which the collector reports as
`infersight.inference.endpoint.up` = 0.
"""
from __future__ import annotations

import json
import logging
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from prometheus_client.parser import text_string_to_metric_families

from infersight.collectors.base import Point
from infersight.collectors.inference.delta import Delta, DeltaTracker
from infersight.collectors.inference.metrics import ADDRESS, SERVER_KIND, TENANT, UP, ServerKind
from infersight.collectors.inference.model import Context, Reading
from infersight.collectors.inference.servers import SERVERS, explain_json
from infersight.semconv import SERVER_KINDS

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 64 * 1024 * 1024
START_TIME = "process_start_time_seconds"
# Sample (and HELP/TYPE) names of the families each server module reads.
_WANTED = {kind: frozenset(f + suffix for f in (*mod.FAMILIES, START_TIME)
                           for suffix in ("", "_total", "_bucket", "_sum", "_count"))
           for kind, mod in SERVERS.items()}


class ScrapeError(Exception):
    """An endpoint could not be scraped or understood; the message names the URL."""


def detect_kind(names: Iterable[str]) -> ServerKind | None:
    """The server kind from its metric family names (`vllm:`, `sglang:`, `tgi_`, `nv_inference_`)."""
    for name in names:
        for kind, mod in SERVERS.items():
            if name.startswith(mod.PREFIX):
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
    except Exception as err:  # noqa: BLE001 - urllib raises URLError, HTTPError, OSError, ValueError...
        raise ScrapeError(f"{url}: {err}") from None
    if len(body) > max_bytes:
        raise ScrapeError(f"{url}: response larger than {max_bytes} bytes")
    return body.decode("utf-8", "replace")


@dataclass
class Target:
    """One endpoint and what its scrapes remember: detected kind, identity, previous cumulative values."""

    url: str
    kind: ServerKind | None
    model: str | None
    tenant: str | None
    model_names: dict[str, str] = field(default_factory=dict)
    address: str = field(init=False)
    tracker: DeltaTracker = field(default_factory=DeltaTracker)
    last_ns: int | None = None
    ctx: Context | None = None

    def __post_init__(self) -> None:
        self.address = urlsplit(self.url).netloc


@dataclass(frozen=True)
class Scraper:
    """How every endpoint of one collector is scraped: data source, timeout, clock, tenant rules."""

    fetch: Callable[[str, float], str]
    timeout: float
    clock: Callable[[], int]
    tenant_label: str | None

    def scrape(self, t: Target) -> list[Point]:
        """Gauges as read, counters and histograms as deltas since the previous scrape (none at the first)."""
        text = self.fetch(t.url, self.timeout)
        now = self.clock()
        if text.lstrip()[:1] in ("{", "["):
            raise ScrapeError(f"{t.url}: {explain_json(text)}")
        if t.kind is not None:
            text = prefilter(text, _WANTED[t.kind])
        try:
            families = {f.name: f for f in text_string_to_metric_families(text)}
        except Exception as err:  # noqa: BLE001 - the parser raises ValueError and friends on malformed lines
            raise ScrapeError(f"{t.url}: malformed exposition: {err}") from None
        if t.kind is None:
            t.kind = detect_kind(families)
            if t.kind is None:
                raise ScrapeError(f"{t.url}: cannot detect the server kind from its metric names; "
                                  f"set `kind` ({', '.join(SERVER_KINDS)})")
        readings = list(SERVERS[t.kind].readings(families, self._context(t, t.kind)))
        start = families.get(START_TIME)
        start_time = start.samples[0].value if start is not None and start.samples else None
        deltas = t.tracker.update([r for r in readings if r.spec.kind != "gauge"], start_time)
        points = [r.spec.point(r.value, r.attrs, time_ns=now) for r in readings if r.spec.kind == "gauge"]
        if t.last_ns is not None:
            points.extend(_delta_points(deltas, t.last_ns, now))
        t.last_ns = now
        return points

    def up(self, t: Target, value: int) -> Point:
        """`infersight.inference.endpoint.up` for the endpoint's last scrape."""
        attrs = {ADDRESS: t.address}
        if t.kind:
            attrs[SERVER_KIND] = t.kind
        if t.tenant:
            attrs[TENANT] = t.tenant
        return UP.point(value, attrs, time_ns=self.clock())

    def _context(self, t: Target, kind: ServerKind) -> Context:
        if t.ctx is not None:
            return t.ctx
        model = t.model
        if model is None and kind == "tgi":
            model = self._tgi_model(t.url)
        ctx = Context(kind, t.address, model, t.tenant, self.tenant_label, t.model_names)
        if model is not None or kind != "tgi":  # an unanswered TGI /info is asked again next scrape
            t.ctx = ctx
        return ctx

    def _tgi_model(self, metrics_url: str) -> str | None:
        """TGI names its model only in `GET /info`; a failure leaves the model unknown."""
        parts = urlsplit(metrics_url)
        try:
            return json.loads(self.fetch(f"{parts.scheme}://{parts.netloc}/info", self.timeout))["model_id"]
        except (ScrapeError, ValueError, KeyError, TypeError) as err:
            log.warning("TGI at %s: model unknown (%s); set `model` on the endpoint", parts.netloc, err)
            return None


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
