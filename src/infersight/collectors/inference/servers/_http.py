"""HTTP status counters of a server's API front end, as an availability signal (not a dialect).

vLLM's OpenAI server counts every response with prometheus-fastapi-instrumentator:
`http_requests_total{handler, method, status}`, `status` grouped as `2xx`/`4xx`/`5xx` by default
(`500`, `503`, ... when a deployment turns grouping off). A 5xx answered by a server that is up and
scraped is a failed request the engine's own counters may never see (the engine is dead, or the
request failed before it finished), so each dialect decides whether its own failure counter already
counts them (the precedence in docs/collectors/inference.md) and, where it does not, adds them here as
`infersight.inference.requests{outcome=bad, error.type=http_5xx}`. 4xx are the client's errors and
never count; health, metrics and admin routes are not requests to the model.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping

from prometheus_client.metrics_core import Metric

from infersight.collectors.inference.metrics import ERROR_TYPE, MODEL, OUTCOME, REQUESTS
from infersight.collectors.inference.model import Context, Reading, series_key

FAMILY = "http_requests"
ERROR = "http_5xx"
# Routes that are not inference requests (vLLM's, SGLang's): their 5xx do not burn a model's budget.
NOT_INFERENCE = frozenset({
    "/metrics", "/health", "/health_generate", "/ping", "/version", "/server_info", "/get_server_info", "/load",
    "/v1/models", "/tokenize", "/detokenize", "/is_sleeping", "/sleep", "/wake_up", "/reset_prefix_cache",
    "/collective_rpc", "/scale_elastic_ep", "/is_scaling_elastic_ep", "/v1/load_lora_adapter",
    "/v1/unload_lora_adapter", "/get_model_info", "/flush_cache", "none"})


def server_errors(families: Mapping[str, Metric], ctx: Context, models: Iterable[str]) -> Iterable[Reading]:
    """5xx responses of inference routes as bad requests; `models`: the model names the server's own
    series carry (the HTTP counter has none): with exactly one, the 5xx are that model's, else the
    endpoint's configured model or `unknown`."""
    fam = families.get(FAMILY)
    if fam is None:
        return
    names = set(models)
    model = ctx.model_of(next(iter(names)) if len(names) == 1 else None)
    for s in fam.samples:
        if s.name.endswith("_created") or not str(s.labels.get("status", "")).startswith("5"):
            continue
        if s.labels.get("handler", "") in NOT_INFERENCE:
            continue
        attrs = ctx.attrs({}, None)
        attrs.update({MODEL: model, OUTCOME: "bad", ERROR_TYPE: ERROR})
        yield Reading(REQUESTS, series_key(s.name, s.labels), attrs, s.value)


def model_names(family: Metric | None, label: str) -> set[str]:
    return {s.labels[label] for s in (family.samples if family is not None else ()) if label in s.labels}
