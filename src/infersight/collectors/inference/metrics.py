"""The inference collector's published metric list and the attribute names it sets (docs/collectors/inference.md).

Every server dialect (`servers/`) maps its own series onto these normalised metrics, so the
rollups, SLOs, cost report and dashboards read one set of names whatever the server.
"""
from __future__ import annotations

from typing import Literal

from infersight.collectors.base import MetricSpec

# The server dialects, one module each in `servers/` (the values of SERVER_KIND).
ServerKind = Literal["vllm", "tgi", "triton", "sglang"]

# Attribute names the collector sets. Tenant is a fixed key the rollups read (docs/ROLLUPS.md).
MODEL = "gen_ai.request.model"
SERVER_KIND = "infersight.server.kind"
ADDRESS = "server.address"
TENANT = "infersight.tenant"
OUTCOME = "infersight.request.outcome"
ERROR_TYPE = "error.type"
TOKEN_TYPE = "gen_ai.token.type"
# Server labels kept as they are: vLLM data-parallel engine, SGLang tensor-parallel rank, Triton model version.
SERVER_LABELS = ("engine", "tp_rank", "version")

_COMMON = (MODEL, SERVER_KIND, ADDRESS, TENANT, *SERVER_LABELS)

REQUESTS = MetricSpec("infersight.inference.requests", "counter", "{request}",
                      "Finished requests by outcome (good/bad) since the previous scrape",
                      (*_COMMON, OUTCOME, ERROR_TYPE))
DURATION = MetricSpec("gen_ai.server.request.duration", "histogram", "s",
                      "End-to-end request latency measured by the server", _COMMON)
TTFT = MetricSpec("gen_ai.server.time_to_first_token", "histogram", "s",
                  "Time to generate the first token", _COMMON)
TPOT = MetricSpec("gen_ai.server.time_per_output_token", "histogram", "s",
                  "Time per output token after the first (inter-token latency)", _COMMON)
QUEUE = MetricSpec("infersight.inference.request.queue_time", "histogram", "s",
                   "Time a request waited before it was scheduled", _COMMON)
TOKENS = MetricSpec("gen_ai.client.token.usage", "counter", "{token}",
                    "Tokens processed since the previous scrape; type input (includes cached), "
                    "output, or cached_input (the cached subset of input)", (*_COMMON, TOKEN_TYPE))
RUNNING = MetricSpec("infersight.inference.requests.running", "gauge", "{request}",
                     "Requests currently executing", _COMMON)
WAITING = MetricSpec("infersight.inference.requests.waiting", "gauge", "{request}",
                     "Requests waiting to be scheduled", _COMMON)
KV_CACHE = MetricSpec("infersight.inference.kv_cache.usage", "gauge", "1",
                      "KV-cache (token pool) usage as a 0-1 ratio", _COMMON)
UP = MetricSpec("infersight.inference.endpoint.up", "gauge", "1",
                "1 when the last scrape of the endpoint succeeded, else 0",
                (SERVER_KIND, ADDRESS, TENANT))

METRICS: tuple[MetricSpec, ...] = (REQUESTS, DURATION, TTFT, TPOT, QUEUE, TOKENS, RUNNING, WAITING, KV_CACHE, UP)
