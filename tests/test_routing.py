"""Routing hints: the ranking rules on compare documents, the cache, and the catalog reload (SIGHUP) the hints
follow, on a real in-process server over chDB."""
from __future__ import annotations

import asyncio
import os
import signal
import time

import pytest
import yaml
from aiohttp.test_utils import TestClient, TestServer

from infersight.compare import routing
from infersight.config import parse_config
from support.slo import slo_doc, steady_requests


def dep(key: str, price: str | None, meets=True, exhausted=False, page=False, budget=0.5, instances=1,
        tier=None) -> dict:
    cloud, region, kind = key.split("/")
    return {"key": key, "cloud": cloud, "region": region, "kind": kind, "hosting": "api", "requests": 10,
            "error_ratio": 0.0, "cost": {"pricing": "list", "usd_per_million_tokens": price},
            "slo": {"meets": meets and not exhausted and not page, "exhausted": exhausted, "page_firing": page,
                    "budget_remaining": budget, "fastest_burning_tier": tier,
                    "instances": [{}] * instances}}


def ranked(*deps: dict) -> list[tuple[str, float, bool]]:
    doc = routing.hints({"model": "m", "deployments": list(deps)})
    return [(d["key"], d["weight"], d["eligible"]) for d in doc["deployments"]]


def test_ties_go_to_the_cheaper_and_bad_deployments_are_never_preferred():
    cheap, dear = "a/r/x", "b/r/y"
    assert ranked(dep(dear, "2"), dep(cheap, "1")) == [(cheap, 1.0, True), (dear, 0.0, True)]
    # Exhausted budget or a firing page: never preferred while another meets its SLOs, however cheap.
    assert ranked(dep(cheap, "0.1", exhausted=True), dep(dear, "9"))[0][0] == dear
    assert ranked(dep(cheap, "0.1", page=True), dep(dear, "9"))[0] == (dear, 1.0, True)
    # Burning (a ticket tier active) ranks after meeting, before exhausted/paging.
    order = ranked(dep(cheap, "1", page=True), dep(dear, "2", meets=False), dep("c/r/z", "3", exhausted=True))
    assert [k for k, _, _ in order] == [dear, cheap, "c/r/z"]
    assert order[0][1] == 1.0 and not order[1][2]
    # When none meets its SLOs there is still a first choice: the most budget left within the class.
    both = ranked(dep(cheap, "1", exhausted=True, budget=-3), dep(dear, "1", exhausted=True, budget=-1))
    assert both[0] == (dear, 1.0, True)
    # Unpriced sorts after priced in the same class; no SLO instances means nothing missed.
    assert ranked(dep(cheap, None), dep(dear, "5", instances=0))[0][0] == dear
    assert routing.hints({"model": "m", "deployments": []})["deployments"] == []


async def test_hint_cache_shares_one_computation_and_expires():
    t = [0.0]
    calls = []

    async def compute(model: str) -> dict:
        calls.append(model)
        await asyncio.sleep(0.05)
        return {"model": model, "n": len(calls)}

    cache = routing.HintCache(compute, refresh_seconds=5, clock=lambda: t[0])
    docs = await asyncio.gather(*(cache.get("m") for _ in range(20)))
    assert calls == ["m"] and all(d == {"model": "m", "n": 1} for d, _ in docs)
    t[0] = 4.9
    assert (await cache.get("m"))[0]["n"] == 1
    t[0] = 5.0
    assert (await cache.get("m"))[0]["n"] == 2
    cache.invalidate()
    assert (await cache.get("m"))[0]["n"] == 3 and cache.computations == 3


PRICES = """
api:
  - {provider: azure.ai.openai, model: llama, input_usd_per_million: 1, output_usd_per_million: 1}
  - {provider: aws.bedrock, model: llama, input_usd_per_million: 2, output_usd_per_million: 2}
"""
# Azure announces a price rise: Bedrock is now the cheaper one.
RAISED = PRICES.replace("input_usd_per_million: 1, output_usd_per_million: 1",
                        "input_usd_per_million: 3, output_usd_per_million: 3")


async def test_routing_api_follows_the_catalog_reloaded_on_sighup(store, tmp_path):
    from infersight.compare import api as compare_api
    from infersight.compare.settings import CompareSettings
    from infersight.gateway.app import attach_query, base_app
    from infersight.slo import service as slo_service

    prices = tmp_path / "prices.yaml"
    prices.write_text(PRICES)
    specs = tmp_path / "slos"
    specs.mkdir()
    (specs / "avail.yaml").write_text(yaml.safe_dump(slo_doc(
        name="avail", objective=99, window={"rolling": "1h"}, group_by=["cloud.provider", "infersight.server.kind"])))
    cfg = parse_config({"server": {"storage": {"database": store.database}},
                        "slo": {"paths": [str(specs)], "interval_seconds": 0.2},
                        "cost": {"catalogs": [str(prices)]}})
    minute = int(time.time()) // 60 * 60
    # Spans carry the tokens the list prices apply to; the rollups alone price nothing for API traffic.
    from test_compare import _insert, _ts
    for cloud, provider in (("azure", "azure.ai.openai"), ("aws", "aws.bedrock")):
        _insert(store, "otel_traces", [{"Timestamp": _ts(minute - 120), "SpanName": "chat",
                                        "ResourceAttributes": {"cloud.provider": cloud, "cloud.region": "r1"},
                                        "Duration": 100_000_000, "SpanAttributes": {
                                            "gen_ai.request.model": "llama", "gen_ai.provider.name": provider,
                                            "gen_ai.usage.input_tokens": "500", "gen_ai.usage.output_tokens": "500"}}
                                       for _ in range(10)])
    steady_requests(store, minute - 600, 5, 1, provider="gcp", region="r1", model="other")
    app = base_app(cfg.server)
    attach_query(app, cfg.server, store)
    slo_service.attach(app, cfg, store)
    compare_api.attach(app, cfg, store, settings=CompareSettings(hint_refresh_seconds=30))
    async with TestClient(TestServer(app)) as client:
        async def get() -> tuple[dict, dict]:
            r = await client.get("/api/v1/routing", params={"model": "llama"})
            assert r.status == 200
            return await r.json(), dict(r.headers)

        async def first(expect: str, timeout: float = 10) -> dict:
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                doc, _ = await get()
                if doc["deployments"] and doc["deployments"][0]["key"] == expect and \
                        all(d["slos"] for d in doc["deployments"]):
                    return doc
                app[compare_api.HINTS].invalidate()
                await asyncio.sleep(0.1)
            raise AssertionError(f"{expect} never ranked first: {doc}")

        doc = await first("azure/r1/azure.ai.openai")
        assert [d["usd_per_million_tokens"] for d in doc["deployments"]] == ["1", "2"]
        assert all(d["meets_slos"] for d in doc["deployments"]) and doc["deployments"][0]["weight"] == 1.0
        # Cached: the next poll answers from the cache, says how old it is and how long it stays.
        n = app[compare_api.HINTS].computations
        doc2, headers = await get()
        assert app[compare_api.HINTS].computations == n and headers["Cache-Control"].startswith("max-age=")
        assert float(headers["X-Infersight-Hint-Age"]) >= 0 and doc2["refresh_seconds"] == 30

        # The price change lands in the server's catalog file and SIGHUP reloads it (the SLO specs too).
        prices.write_text(RAISED)
        os.kill(os.getpid(), signal.SIGHUP)
        deadline = time.monotonic() + 5
        while (await get())[0]["deployments"][0]["key"] != "aws/r1/aws.bedrock":
            assert time.monotonic() < deadline, "hints did not follow the reloaded catalog"
            await asyncio.sleep(0.05)
        doc, _ = await get()
        assert [d["usd_per_million_tokens"] for d in doc["deployments"]] == ["2", "3"]
        # A broken catalog is refused with the file's message; the one in use stays.
        prices.write_text("api: [{provider: x}]")
        r = await client.post("/api/v1/compare/reload", json={})
        assert r.status == 400 and "prices.yaml" in (await r.json())["error"]
        assert (await get())[0]["deployments"][0]["key"] == "aws/r1/aws.bedrock"
        r = await client.get("/api/v1/routing")
        assert r.status == 400 and "model" in (await r.json())["error"]


@pytest.mark.parametrize("text,seconds", [("90m", 5400), ("24h", 86400), ("7d", 604800), ("120", 120)])
def test_since(text, seconds):
    from infersight.compare.api import parse_since

    assert parse_since(text) == seconds
