"""Helpers shared by the SLO tests: rollup rows with chosen timestamps, spec documents, a clock."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from infersight.slo.model import compile_spec
from infersight.slo.spec import parse_documents

FIXTURES_DIR = Path(__file__).parent / "fixtures"
T0 = 1_780_000_020 - (1_780_000_020 % 86400)  # a UTC midnight (2026-05-28)

DIMS = ("CloudProvider", "CloudRegion", "HostName", "Model", "ServerKind", "Tenant")


class Clock:
    """The injectable clock: tests move time explicitly."""

    def __init__(self, t: float = T0) -> None:
        self.t = float(t)

    def __call__(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds


def insert_requests(store, rows: list[dict[str, Any]]) -> None:
    """rows: {minute (epoch s), requests, bad, provider, region, model, ...}."""
    values = []
    for r in rows:
        dims = [r.get("provider", "aws"), r.get("region", "us-east-1"), r.get("host", "h1"),
                r.get("model", "llama"), r.get("server_kind", "vllm"), r.get("tenant", "")]
        values.append(f"(toDateTime({int(r['minute'])}), " + ", ".join(f"'{d}'" for d in dims)
                      + f", {int(r['requests'])}, {int(r.get('bad', 0))}, {int(r.get('input_tokens', 0))}, "
                      f"{int(r.get('output_tokens', 0))}, {int(r.get('cached_tokens', 0))})")
    store.execute(f"INSERT INTO `{store.database}`.infersight_requests_1m (Minute, {', '.join(DIMS)}, Requests, "
                  f"BadRequests, InputTokens, OutputTokens, CachedTokens) VALUES " + ", ".join(values))


def steady_requests(store, start: int, minutes: int, per_minute: int, bad_per_minute: int = 0, **dims) -> None:
    """One row per minute; generated inside ClickHouse so long histories stay cheap."""
    d = [dims.get("provider", "aws"), dims.get("region", "us-east-1"), dims.get("host", "h1"),
         dims.get("model", "llama"), dims.get("server_kind", "vllm"), dims.get("tenant", "")]
    store.execute(
        f"INSERT INTO `{store.database}`.infersight_requests_1m (Minute, {', '.join(DIMS)}, Requests, BadRequests, "
        f"InputTokens, OutputTokens, CachedTokens) SELECT toDateTime({start} + number * 60), "
        + ", ".join(f"'{x}'" for x in d)
        + f", {per_minute}, {bad_per_minute}, {dims.get('input_tokens', 0)}, {dims.get('output_tokens', 0)}, "
        f"{dims.get('cached_tokens', 0)} FROM numbers({minutes})")


def insert_latency(store, minute: int, kind: str, bounds: list[float], counts: list[int], **dims) -> None:
    d = [dims.get("provider", "aws"), dims.get("region", "us-east-1"), dims.get("host", "h1"),
         dims.get("model", "llama"), dims.get("server_kind", "vllm"), dims.get("tenant", "")]
    store.execute(
        f"INSERT INTO `{store.database}`.infersight_latency_1m (Minute, {', '.join(DIMS)}, Kind, Bounds, "
        f"BucketCounts, Count, Sum) VALUES (toDateTime({minute}), " + ", ".join(f"'{x}'" for x in d)
        + f", '{kind}', {list(map(float, bounds))}, {counts}, {sum(counts)}, 0)")


def slo_doc(name: str = "avail", sli: dict | None = None, objective: float = 99.9, window: dict | None = None,
            **spec) -> dict:
    body = {"sli": sli or {"ratio": {}}, "objective_percent": objective, "window": window or {"rolling": "30d"}}
    body.update(spec)
    return {"apiVersion": "infersight/v1", "kind": "SLO", "metadata": {"name": name}, "spec": body}


def make_slo(**kw):
    return compile_spec(parse_documents([slo_doc(**kw)], "<test>")[0])
