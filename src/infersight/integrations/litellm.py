"""infersight's routing hints applied to a LiteLLM `Router` (`pip install infersight[litellm]`).

`InfersightRouting` is a LiteLLM custom routing strategy (`CustomRoutingStrategyBase`): for every request it
picks the deployment of the model group that GET /api/v1/routing ranks first, so traffic leaves a deployment
whose SLOs burn before users notice (docs/routing.md). Install it with `install(router, ...)`, which uses
`Router.register_plugin` (LiteLLM's current name) or `Router.set_custom_routing_strategy` (older releases).

Each LiteLLM deployment names the infersight deployment it is, in `model_info`:

    model_list:
      - model_name: llama-3.1-8b
        litellm_params: {model: openai/llama-3.1-8b, api_base: https://aoai-eastus2.example/v1}
        model_info: {infersight_deployment: azure/eastus2/azure.ai.openai}   # cloud/region/kind

(or pass `deployments={model_info.id: key}`); `infersight_model` in `model_info` overrides the model name the
hints are asked for (default: the model group's name). Hints are fetched at most every `refresh_seconds`; when the
server cannot be reached or knows no deployment of the group, the strategy picks at random among the group (fails
open: routing never stops because infersight is down).
"""
from __future__ import annotations

import asyncio
import json
import logging
import random
import time
import urllib.parse
import urllib.request
import warnings
from collections.abc import Callable, Mapping
from typing import Any

import aiohttp
from litellm.types.router import CustomRoutingStrategyBase

log = logging.getLogger(__name__)
DEPLOYMENT_KEY = "infersight_deployment"
MODEL_KEY = "infersight_model"


class HintClient:
    """GET /api/v1/routing?model=M, cached per model for `refresh_seconds` (the server caches too)."""

    def __init__(self, base_url: str, token: str | None = None, refresh_seconds: float = 2.0,
                 timeout_seconds: float = 2.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.base_url = base_url.rstrip("/")
        self._headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.refresh_seconds = refresh_seconds
        self.timeout_seconds = timeout_seconds
        self._clock = clock
        self._cache: dict[str, tuple[float, dict[str, Any] | None]] = {}
        self._lock = asyncio.Lock()
        self.fetches = 0

    def _url(self, model: str) -> str:
        return f"{self.base_url}/api/v1/routing?" + urllib.parse.urlencode({"model": model})

    def _fresh(self, model: str) -> tuple[bool, dict[str, Any] | None]:
        hit = self._cache.get(model)
        if hit is not None and self._clock() - hit[0] < self.refresh_seconds:
            return True, hit[1]
        return False, None

    async def get(self, model: str) -> dict[str, Any] | None:
        ok, doc = self._fresh(model)
        if ok:
            return doc
        async with self._lock:
            ok, doc = self._fresh(model)
            if ok:
                return doc
            try:
                async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout_seconds)) as s, \
                        s.get(self._url(model), headers=self._headers) as resp:
                    resp.raise_for_status()
                    doc = await resp.json()
            except (aiohttp.ClientError, TimeoutError, ValueError) as err:
                log.warning("infersight routing hints for %s unavailable (%s): picking at random", model, err)
                doc = None
            self.fetches += 1
            self._cache[model] = (self._clock(), doc)
            return doc

    def get_sync(self, model: str) -> dict[str, Any] | None:
        ok, doc = self._fresh(model)
        if ok:
            return doc
        req = urllib.request.Request(self._url(model), headers=self._headers)
        try:
            with urllib.request.urlopen(req, timeout=self.timeout_seconds) as resp:
                doc = json.loads(resp.read())
        except (OSError, ValueError) as err:
            log.warning("infersight routing hints for %s unavailable (%s): picking at random", model, err)
            doc = None
        self.fetches += 1
        self._cache[model] = (self._clock(), doc)
        return doc


def _deployments(router: Any, model: str) -> list[dict[str, Any]]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return list(router.get_model_list(model_name=model) or [])


class InfersightRouting(CustomRoutingStrategyBase):
    """Pick the deployment infersight ranks first (weighted by the hints' `weight`)."""

    def __init__(self, router: Any, hints: HintClient, deployments: Mapping[str, str] | None = None,
                 rng: random.Random | None = None) -> None:
        self.router = router
        self.hints = hints
        self.deployments = dict(deployments or {})
        self.rng = rng or random.Random()
        self.picks: list[str] = []  # infersight keys picked, newest last (bounded)

    def key_of(self, deployment: Mapping[str, Any]) -> str | None:
        info = deployment.get("model_info") or {}
        return info.get(DEPLOYMENT_KEY) or self.deployments.get(str(info.get("id")))

    def _hint_model(self, model: str, candidates: list[dict[str, Any]]) -> str:
        for d in candidates:
            name = (d.get("model_info") or {}).get(MODEL_KEY)
            if name:
                return str(name)
        return model

    def choose(self, candidates: list[dict[str, Any]], doc: Mapping[str, Any] | None) -> dict[str, Any]:
        """The candidate with the best hint (weights > 0 drawn by weight; else the best rank; else at random)."""
        if not candidates:
            raise ValueError("no deployment in the model group")
        by_key = {d["key"]: d for d in (doc or {}).get("deployments", ())}
        known = [(c, by_key[k]) for c in candidates if (k := self.key_of(c)) in by_key]
        if not known:
            pick = self.rng.choice(candidates)
        else:
            weighted = [(c, h["weight"]) for c, h in known if h.get("weight", 0) > 0]
            if weighted:
                pick = self.rng.choices([c for c, _ in weighted], [w for _, w in weighted])[0]
            else:
                pick = min(known, key=lambda ch: ch[1].get("rank", 1 << 30))[0]
        self.picks = [*self.picks[-999:], self.key_of(pick) or ""]
        return pick

    async def async_get_available_deployment(self, model: str, messages: Any = None, input: Any = None,
                                             specific_deployment: bool | None = False,
                                             request_kwargs: Any = None) -> Any:
        candidates = _deployments(self.router, model)
        doc = await self.hints.get(self._hint_model(model, candidates)) if candidates else None
        return self.choose(candidates, doc)

    def get_available_deployment(self, model: str, messages: Any = None, input: Any = None,
                                 specific_deployment: bool | None = False, request_kwargs: Any = None) -> Any:
        candidates = _deployments(self.router, model)
        doc = self.hints.get_sync(self._hint_model(model, candidates)) if candidates else None
        return self.choose(candidates, doc)


def install(router: Any, server_url: str, token: str | None = None, refresh_seconds: float = 2.0,
            deployments: Mapping[str, str] | None = None, timeout_seconds: float = 2.0) -> InfersightRouting:
    """Make `router` route by infersight's hints from the server at `server_url`; returns the strategy."""
    strategy = InfersightRouting(router, HintClient(server_url, token, refresh_seconds, timeout_seconds),
                                 deployments)
    register = getattr(router, "register_plugin", None) or router.set_custom_routing_strategy
    register(strategy)
    return strategy
