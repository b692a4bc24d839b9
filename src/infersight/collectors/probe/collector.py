"""The `probe` collector: one small streamed chat completion per configured endpoint and interval.

Opt-in: nothing is probed unless endpoints are configured. Secrets: `headers` values are
`SecretStr` (masked in `config check`), or `headers_file` names a file of `Name: value` lines
(e.g. a mounted Kubernetes secret) read before each probe, so a rotated key is picked up; the
collector never reads the environment. Requests go straight to the endpoint (no proxy).

A daily token cap per endpoint stops probing once reached (UTC day); the skipped probes are counted.
A 429's Retry-After is honoured: the endpoint is not probed again before it passes.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator, model_validator

from infersight import semconv as sc
from infersight.collectors.base import AttrValue, Health, MetricSpec, Point, type_of
from infersight.collectors.probe import metrics as M
from infersight.collectors.probe.openai import HttpTransport, ProbeResult, Transport, chat_body, chat_url, probe
from infersight.config import CollectorConfig, Strict

log = logging.getLogger(__name__)

DEFAULT_PROMPT = "Reply with the single word: ok"


class ProbeEndpoint(Strict):
    """One endpoint to probe."""

    name: str = Field(min_length=1)
    base_url: str
    dialect: Literal["openai", "azure"] = "openai"
    # The model to ask for (`model` in the body); for `azure` the deployment is in the path instead.
    model: str | None = None
    deployment: str | None = None
    api_version: str | None = None
    headers: dict[str, SecretStr] = Field(default_factory=dict)
    headers_file: Path | None = None
    # gen_ai.provider.name (openai, azure.ai.openai, aws.bedrock, gcp.vertex_ai, oci, vllm, ...).
    provider: str = "openai"
    cloud_provider: str | None = None
    cloud_region: str | None = None
    tenant: str | None = None
    interval_seconds: float | None = Field(None, gt=0)
    prompt: str = DEFAULT_PROMPT
    max_tokens: int = Field(8, ge=1, le=4096)
    daily_token_cap: int | None = Field(None, ge=1)
    # Ask for the final usage chunk (stream_options.include_usage); turn off where an endpoint rejects it.
    include_usage: bool = True

    @field_validator("base_url")
    @classmethod
    def _http(cls, v: str) -> str:
        parts = urlsplit(v)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError("must be an http(s) URL such as https://example.openai.azure.com/openai/v1")
        return v

    @model_validator(mode="after")
    def _dialect_fields(self) -> ProbeEndpoint:
        if self.dialect == "azure" and not (self.deployment and self.api_version):
            raise ValueError("the azure dialect needs `deployment` and `api_version`")
        if self.dialect == "openai" and not self.model:
            raise ValueError("the openai dialect needs `model`")
        return self


class ProbeConfig(CollectorConfig):
    """Options of the `probe` collector; `timeout_seconds` bounds a whole probe."""

    type: Literal["probe"] = "probe"
    interval_seconds: float = Field(60.0, gt=0)
    timeout_seconds: float = Field(30.0, gt=0)
    endpoints: tuple[ProbeEndpoint, ...] = Field(min_length=1)

    @field_validator("endpoints")
    @classmethod
    def _unique(cls, v: tuple[ProbeEndpoint, ...]) -> tuple[ProbeEndpoint, ...]:
        names = [e.name for e in v]
        if len(set(names)) != len(names):
            raise ValueError(f"endpoint names must be unique: {names}")
        return v


@dataclass
class _State:
    ep: ProbeEndpoint
    url: str
    body: bytes
    attrs: dict[str, AttrValue]
    next_due: float = 0.0
    day: int = -1
    tokens_today: int = 0
    cap_logged: bool = False
    skip_reason: str = ""
    last_error: str | None = None  # why the last probe failed; None after a good one (or none yet)


def read_headers_file(path: Path) -> dict[str, str]:
    """`Name: value` lines; blank lines and `#` comments skipped."""
    out = {}
    for i, line in enumerate(path.read_text().splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, value = line.partition(":")
        if not sep or not name.strip():
            raise ValueError(f"{path}:{i}: expected `Name: value`")
        out[name.strip()] = value.strip()
    return out


class ProbeCollector:
    """Probes each due endpoint once per `collect()` (sequentially, each bounded by `timeout_seconds`).

    `transport` (sync streaming HTTP POST), `clock` (monotonic seconds) and `wall` (Unix seconds,
    for the UTC day of the token cap) are injected; tests pass loopback servers and fake clocks.
    """

    type = type_of(ProbeConfig)
    Config = ProbeConfig
    metrics: tuple[MetricSpec, ...] = M.METRICS

    def __init__(self, endpoints: Iterable[ProbeEndpoint], timeout_seconds: float = 30.0,
                 transport: Transport | None = None, clock: Callable[[], float] = time.monotonic,
                 wall: Callable[[], float] = time.time) -> None:
        self._transport = transport or HttpTransport()
        self._timeout = timeout_seconds
        self._clock = clock
        self._wall = wall
        self._states = [self._state(ep) for ep in endpoints]

    @classmethod
    def from_config(cls, cfg: ProbeConfig) -> ProbeCollector:
        return cls(cfg.endpoints, cfg.timeout_seconds)

    @staticmethod
    def _state(ep: ProbeEndpoint) -> _State:
        attrs: dict[str, AttrValue] = {
            sc.OPERATION_NAME: "chat", sc.PROVIDER_NAME: ep.provider, sc.MODEL: ep.model or ep.deployment or "unknown",
            sc.SERVER_ADDRESS: urlsplit(ep.base_url).hostname or "", sc.TRAFFIC: sc.TRAFFIC_PROBE,
            sc.PROBE_ENDPOINT: ep.name}
        for key, value in ((sc.CLOUD_PROVIDER, ep.cloud_provider), (sc.CLOUD_REGION, ep.cloud_region),
                           (sc.TENANT, ep.tenant)):
            if value:
                attrs[key] = value
        return _State(ep, chat_url(ep.dialect, ep.base_url, ep.deployment, ep.api_version),
                      chat_body(ep.model, ep.prompt, ep.max_tokens, ep.include_usage), attrs)

    def collect(self) -> Iterator[Point]:
        for st in self._states:
            yield from self._one(st)

    def close(self) -> None:
        return None

    def health(self) -> Health:
        """Down when the last probe of every endpoint failed; each failing endpoint is a problem."""
        problems = tuple(f"endpoint {st.ep.name} down: {st.last_error}" for st in self._states
                         if st.last_error is not None)
        if problems and len(problems) == len(self._states):
            return Health(False, "endpoints_down", f"every probed endpoint failed ({len(problems)})", problems)
        return Health(True, problems=problems)

    def _one(self, st: _State) -> Iterator[Point]:
        now = self._clock()
        wall_ns = int(self._wall() * 1e9)
        day = wall_ns // (86400 * 10**9)
        if day != st.day:
            st.day, st.tokens_today, st.cap_logged = day, 0, False
        if now < st.next_due:
            if st.skip_reason:
                yield M.SKIPPED.point(1, {**st.attrs, "reason": st.skip_reason}, temporality="delta",
                                      time_ns=wall_ns, start_time_ns=wall_ns - 1)
            return
        cap = st.ep.daily_token_cap
        if cap is not None and st.tokens_today >= cap:
            if not st.cap_logged:
                log.warning("probe %s: daily token cap %d reached (%d used); no probes until 00:00 UTC",
                            st.ep.name, cap, st.tokens_today)
                st.cap_logged = True
            yield M.SKIPPED.point(1, {**st.attrs, "reason": "daily_token_cap"}, temporality="delta",
                                  time_ns=wall_ns, start_time_ns=wall_ns - 1)
            yield M.TOKENS_TODAY.point(st.tokens_today, st.attrs, time_ns=wall_ns)
            return
        st.skip_reason = ""
        try:
            headers = {k: v.get_secret_value() for k, v in st.ep.headers.items()}
            if st.ep.headers_file is not None:
                headers.update(read_headers_file(st.ep.headers_file))
        except (OSError, ValueError) as err:
            result = ProbeResult(error_type="config", error=str(err))
        else:
            result = probe(self._transport, st.url, headers, st.body, self._timeout, self._clock)
        st.next_due = now + (st.ep.interval_seconds or 0.0)
        if result.error_type == "429" and result.retry_after_seconds:
            st.next_due = max(st.next_due, now + result.retry_after_seconds)
            st.skip_reason = "retry_after"
        st.tokens_today += self._tokens_used(st.ep, result)
        end_ns = int(self._wall() * 1e9)
        yield from self._points(st, result, wall_ns, max(end_ns, wall_ns + 1))

    @staticmethod
    def _tokens_used(ep: ProbeEndpoint, r: ProbeResult) -> int:
        """Usage when reported; else, for an answered request, a bound: prompt (4 chars a token) + max_tokens."""
        if r.input_tokens is not None or r.output_tokens is not None:
            return (r.input_tokens or 0) + (r.output_tokens or 0)
        if r.status is not None and r.status < 400:
            return len(ep.prompt) // 4 + 1 + ep.max_tokens
        return 0

    def _points(self, st: _State, r: ProbeResult, start_ns: int, end_ns: int) -> Iterator[Point]:
        attrs = dict(st.attrs)
        if r.serving_region:
            attrs[sc.SERVING_REGION] = r.serving_region
        outcome: dict[str, AttrValue] = {sc.OUTCOME: "good" if r.ok else "bad"}
        if r.error_type:
            outcome[sc.ERROR_TYPE] = r.error_type
            log.warning("probe %s failed: %s %s (HTTP %s, request id %s)", st.ep.name, r.error_type, r.error,
                        r.status, r.request_id)
        st.last_error = None if r.ok else (f"{r.error_type}: {r.error}" if r.error else str(r.error_type))
        yield M.UP.point(1 if r.ok else 0, st.attrs, time_ns=end_ns)
        if r.status is not None:
            outcome[sc.HTTP_STATUS] = r.status
        delta = {"temporality": "delta", "time_ns": end_ns, "start_time_ns": start_ns}
        yield M.REQUESTS.point(1, {**attrs, **outcome}, **delta)
        err = {sc.ERROR_TYPE: r.error_type} if r.error_type else {}
        yield _observe(M.DURATION, r.duration, {**attrs, **err}, M.DURATION_BOUNDS, delta)
        if r.time_to_headers is not None:
            yield _observe(M.TIME_TO_HEADERS, r.time_to_headers, attrs, M.DURATION_BOUNDS, delta)
        if r.ok and r.ttft is not None:
            yield _observe(M.TTFT, r.ttft, attrs, M.TTFT_BOUNDS, delta)
        if r.ok and r.tpot is not None:
            yield _observe(M.TPOT, r.tpot, attrs, M.TPOT_BOUNDS, delta)
        for token_type, n in (("input", r.input_tokens), ("output", r.output_tokens)):
            if n is not None:
                yield _observe(M.TOKENS, n, {**attrs, sc.TOKEN_TYPE: token_type}, M.TOKEN_BOUNDS, delta)
        for kind, value in (("requests", r.remaining_requests), ("tokens", r.remaining_tokens)):
            if value is not None:
                yield M.RATELIMIT.point(value, {**st.attrs, sc.RATELIMIT_KIND: kind}, time_ns=end_ns)
        yield M.TOKENS_TODAY.point(st.tokens_today, st.attrs, time_ns=end_ns)


def _observe(spec: MetricSpec, value: float, attrs: dict, bounds: tuple[float, ...], delta: dict) -> Point:
    """A delta histogram holding one observation."""
    idx = next((i for i, b in enumerate(bounds) if value <= b), len(bounds))
    counts = tuple(1 if i == idx else 0 for i in range(len(bounds) + 1))
    return spec.point(value, attrs, bounds=tuple(float(b) for b in bounds), bucket_counts=counts, count=1, **delta)
