"""LiteLLM proxy `/metrics` (`litellm_*`): an LLM gateway read as an inference source.

Model is the model group the client asked for (`requested_model`, `model_group`), else the
label `model`; `gen_ai.provider.name` is `api_provider` and `infersight.deployment` is
`litellm_model_name` where the series names them. Precedence, so no request is counted twice:

- requests: the per-deployment counters (`litellm_deployment_success_responses`, good, and
  `litellm_deployment_failure_responses`, bad by `exception_class`) when exposed: one count per
  upstream attempt, so a request retried on a fallback deployment counts once per deployment tried.
  Otherwise the proxy counters: `litellm_proxy_total_requests_metric` with a 2xx/3xx `status_code`
  is good and `litellm_proxy_failed_requests_metric` is bad by `exception_class`.
- latency: `litellm_request_total_latency_metric` (end-to-end at the proxy),
  `litellm_llm_api_time_to_first_token_metric` (TTFT, streaming requests),
  `litellm_deployment_latency_per_output_token` (time per output token).
- tokens: `litellm_input_tokens_metric` / `litellm_output_tokens_metric` (older: `litellm_input_tokens`...).
- spend (`litellm_spend_metric`), remaining rate limits (`litellm_remaining_{requests,tokens}_metric`,
  the lowest over API keys) and deployment state (`litellm_deployment_state`: 0 healthy, 1 partial
  outage, 2 complete outage).
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping

from prometheus_client.metrics_core import Metric

from infersight.collectors.base import AttrValue
from infersight.collectors.inference.metrics import (
    DEPLOYMENT,
    DEPLOYMENT_STATE,
    DURATION,
    ERROR_TYPE,
    OUTCOME,
    PROVIDER,
    RATELIMIT,
    RATELIMIT_KIND,
    REQUESTS,
    SPEND,
    TOKEN_TYPE,
    TOKENS,
    TPOT,
    TTFT,
)
from infersight.collectors.inference.model import Context, Reading, first, histograms, series_key

PREFIX = "litellm_"
_MODEL_LABELS = ("requested_model", "model_group", "model", "litellm_model_name")

# Every family `readings` reads: the collector parses only these lines.
FAMILIES = frozenset({
    "litellm_deployment_success_responses", "litellm_deployment_failure_responses",
    "litellm_proxy_total_requests_metric", "litellm_proxy_failed_requests_metric",
    "litellm_request_total_latency_metric", "litellm_llm_api_time_to_first_token_metric",
    "litellm_deployment_latency_per_output_token", "litellm_input_tokens_metric", "litellm_output_tokens_metric",
    "litellm_input_tokens", "litellm_output_tokens", "litellm_spend_metric", "litellm_remaining_requests_metric",
    "litellm_remaining_tokens_metric", "litellm_deployment_state"})


def _attrs(ctx: Context, labels: Mapping[str, str]) -> dict[str, AttrValue]:
    label = next((k for k in _MODEL_LABELS if labels.get(k)), None)
    out = ctx.attrs(labels, label)
    if labels.get("api_provider"):
        out[PROVIDER] = labels["api_provider"]
    if labels.get("litellm_model_name"):
        out[DEPLOYMENT] = labels["litellm_model_name"]
    return out


def _counter(fam: Metric, ctx: Context, spec, extra: Mapping[str, AttrValue] | None = None) -> Iterable[Reading]:
    for s in fam.samples:
        if s.name.endswith("_created"):
            continue
        attrs = _attrs(ctx, s.labels)
        if extra:
            attrs.update(extra)
        yield Reading(spec, series_key(s.name, s.labels), attrs, s.value)


def _failures(fam: Metric, ctx: Context) -> Iterable[Reading]:
    for r in _counter(fam, ctx, REQUESTS, {OUTCOME: "bad"}):
        labels = dict(r.key[1])
        r.attrs[ERROR_TYPE] = labels.get("exception_class") or labels.get("exception_status") or "error"
        yield r


def _good_status(code: str) -> bool:
    return code[:1] in ("1", "2", "3")


def _worst(fam: Metric, ctx: Context, spec, extra: Mapping[str, AttrValue], sign: float = 1.0) -> Iterable[Reading]:
    """One gauge per normalised series: the lowest value (highest with sign -1) over the labels it drops."""
    worst: dict[tuple, Reading] = {}
    for s in fam.samples:
        attrs = _attrs(ctx, s.labels)
        attrs.update(extra)
        key = tuple(sorted(attrs.items()))
        if key not in worst or sign * s.value < sign * worst[key].value:
            worst[key] = Reading(spec, (fam.name, key), attrs, s.value)
    yield from worst.values()


def readings(families: Mapping[str, Metric], ctx: Context) -> Iterable[Reading]:
    ok, failed = families.get("litellm_deployment_success_responses"), families.get(
        "litellm_deployment_failure_responses")
    if ok is not None or failed is not None:
        if ok is not None:
            yield from _counter(ok, ctx, REQUESTS, {OUTCOME: "good"})
        if failed is not None:
            yield from _failures(failed, ctx)
    else:
        total = families.get("litellm_proxy_total_requests_metric")
        if total is not None:
            yield from (r for r in _counter(total, ctx, REQUESTS, {OUTCOME: "good"})
                        if _good_status(dict(r.key[1]).get("status_code", "200")))
        fam = families.get("litellm_proxy_failed_requests_metric")
        if fam is not None:
            yield from _failures(fam, ctx)
    for spec, name in ((DURATION, "litellm_request_total_latency_metric"),
                       (TTFT, "litellm_llm_api_time_to_first_token_metric"),
                       (TPOT, "litellm_deployment_latency_per_output_token")):
        fam = families.get(name)
        if fam is not None:
            for h in histograms(fam, ctx, spec, None):
                h.attrs = _attrs(ctx, dict(h.key[1]))
                yield h
    for token_type, names in (("input", ("litellm_input_tokens_metric", "litellm_input_tokens")),
                              ("output", ("litellm_output_tokens_metric", "litellm_output_tokens"))):
        fam = first(families, *names)
        if fam is not None:
            yield from _counter(fam, ctx, TOKENS, {TOKEN_TYPE: token_type})
    fam = families.get("litellm_spend_metric")
    if fam is not None:
        yield from _counter(fam, ctx, SPEND)
    for kind in ("requests", "tokens"):
        fam = families.get(f"litellm_remaining_{kind}_metric")
        if fam is not None:  # the lowest over API keys
            yield from _worst(fam, ctx, RATELIMIT, {RATELIMIT_KIND: kind})
    fam = families.get("litellm_deployment_state")
    if fam is not None:  # the worst (highest) state over the labels dropped (api_base, model_id)
        yield from _worst(fam, ctx, DEPLOYMENT_STATE, {}, sign=-1.0)
