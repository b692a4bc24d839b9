"""The inference collector's published metric list and the attribute names it sets (docs/collectors/inference.md).

Every server dialect (`servers/`) maps its own series onto these normalised metrics, so the
rollups, SLOs, cost report and dashboards read one set of names whatever the server.
"""
from __future__ import annotations

from infersight import semconv
from infersight.collectors.base import MetricSpec
from infersight.semconv import ServerKind as ServerKind  # re-exported: the dialects' kind

# Attribute names the collector sets (owned by semconv; the rollups read them, docs/ROLLUPS.md).
MODEL = semconv.MODEL
SERVER_KIND = semconv.SERVER_KIND
ADDRESS = semconv.SERVER_ADDRESS
TENANT = semconv.TENANT
OUTCOME = semconv.OUTCOME
ERROR_TYPE = semconv.ERROR_TYPE
TOKEN_TYPE = semconv.TOKEN_TYPE
PROVIDER = semconv.PROVIDER_NAME
DEPLOYMENT = semconv.DEPLOYMENT
RATELIMIT_KIND = semconv.RATELIMIT_KIND
WAIT_REASON = semconv.WAIT_REASON
# Server labels kept as they are: vLLM data-parallel engine, SGLang tensor-parallel rank, Triton model version.
SERVER_LABELS = ("engine", "tp_rank", "version")
# Set by gateway dialects (LiteLLM): the upstream provider and deployment behind a model group.
GATEWAY_LABELS = (PROVIDER, DEPLOYMENT)

_COMMON = (MODEL, SERVER_KIND, ADDRESS, TENANT, *SERVER_LABELS, *GATEWAY_LABELS)

REQUESTS = MetricSpec(semconv.INFERENCE_REQUESTS, "counter", "{request}",
                      "Finished requests by outcome (good/bad) since the previous scrape",
                      (*_COMMON, OUTCOME, ERROR_TYPE))
DURATION = MetricSpec(semconv.SERVER_REQUEST_DURATION, "histogram", "s",
                      "End-to-end request latency measured by the server", _COMMON)
TTFT = MetricSpec(semconv.SERVER_TTFT, "histogram", "s",
                  "Time to generate the first token", _COMMON)
TPOT = MetricSpec(semconv.SERVER_TPOT, "histogram", "s",
                  "Time per output token after the first (inter-token latency)", _COMMON)
QUEUE = MetricSpec(semconv.INFERENCE_QUEUE_TIME, "histogram", "s",
                   "Time a request waited before it was scheduled", _COMMON)
TOKENS = MetricSpec(semconv.TOKEN_USAGE, "counter", "{token}",
                    "Tokens processed since the previous scrape; type input (includes cached), "
                    "output, or cached_input (the cached subset of input)", (*_COMMON, TOKEN_TYPE))
RUNNING = MetricSpec("infersight.inference.requests.running", "gauge", "{request}",
                     "Requests currently executing", _COMMON)
WAITING = MetricSpec("infersight.inference.requests.waiting", "gauge", "{request}",
                     "Requests waiting to be scheduled; by reason where the server says (the reasons sum to "
                     "the total)", (*_COMMON, WAIT_REASON))
KV_CACHE = MetricSpec("infersight.inference.kv_cache.usage", "gauge", "1",
                      "KV-cache (token pool) usage as a 0-1 ratio", _COMMON)
SPEND = MetricSpec(semconv.INFERENCE_SPEND, "counter", "{USD}",
                   "Spend the gateway attributed to requests since the previous scrape (LiteLLM)", _COMMON)
RATELIMIT = MetricSpec(semconv.RATELIMIT_REMAINING, "gauge", "1",
                       "Remaining upstream rate limit (requests or tokens) as the gateway last saw it; "
                       "the lowest over API keys", (*_COMMON, RATELIMIT_KIND))
DEPLOYMENT_STATE = MetricSpec(semconv.DEPLOYMENT_STATE, "gauge", "1",
                              "Upstream deployment state: 0 healthy, 1 partial outage, 2 complete outage (LiteLLM)",
                              _COMMON)
UP = MetricSpec(semconv.INFERENCE_ENDPOINT_UP, "gauge", "1",
                "1 when the last scrape of the endpoint succeeded, else 0",
                (SERVER_KIND, ADDRESS, TENANT))

METRICS: tuple[MetricSpec, ...] = (REQUESTS, DURATION, TTFT, TPOT, QUEUE, TOKENS, RUNNING, WAITING, KV_CACHE,
                                   SPEND, RATELIMIT, DEPLOYMENT_STATE, UP)
