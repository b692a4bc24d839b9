"""Names of the data contract: attribute keys, metric names, server kinds and header names.

The agent writes these names, the gateway stores them, the rollups, SLO engine, cost report, web UI
and dashboards read them back. Each name is declared here once; every module imports it from here
(OTel semantic conventions where they exist, `infersight.*` where they do not).
"""
from __future__ import annotations

from typing import Literal

# -- resource attributes (OTel semconv: cloud.*, host.*) -------------------------------------------
CLOUD_PROVIDER = "cloud.provider"
CLOUD_PLATFORM = "cloud.platform"
CLOUD_REGION = "cloud.region"
CLOUD_ZONE = "cloud.availability_zone"
CLOUD_ACCOUNT = "cloud.account.id"
HOST_NAME = "host.name"
HOST_ID = "host.id"
HOST_TYPE = "host.type"
SERVICE_NAME = "service.name"
# The node's purchase option (on_demand, reserved, spot): capacity cost per node.
CAPACITY_TYPE = "infersight.capacity_type"

# -- request attributes ----------------------------------------------------------------------------
MODEL = "gen_ai.request.model"
PROVIDER_NAME = "gen_ai.provider.name"
GEN_AI_SYSTEM = "gen_ai.system"  # the pre-1.37 name of gen_ai.provider.name, still sent by older SDKs
OPERATION_NAME = "gen_ai.operation.name"
TOKEN_TYPE = "gen_ai.token.type"
USAGE_INPUT_TOKENS = "gen_ai.usage.input_tokens"
USAGE_OUTPUT_TOKENS = "gen_ai.usage.output_tokens"
USAGE_CACHED_TOKENS = "gen_ai.usage.cache_read.input_tokens"
USAGE_CACHED_TOKENS_LEGACY = "gen_ai.usage.cache_read_input_tokens"
USAGE_COST = "gen_ai.usage.cost"
SERVER_ADDRESS = "server.address"
ERROR_TYPE = "error.type"
# Which self-hosted server (vllm, tgi, ...) produced a series; for spans, the provider name.
SERVER_KIND = "infersight.server.kind"
# Attribute (point/span, else resource) naming the tenant; the rollups read it.
TENANT = "infersight.tenant"
OUTCOME = "infersight.request.outcome"
HTTP_STATUS = "http.response.status_code"
RESPONSE_MODEL = "gen_ai.response.model"
# Synthetic traffic: every point the probe collector emits carries TRAFFIC = TRAFFIC_PROBE, so
# user-traffic SLIs can leave it out and probe SLOs can select it.
TRAFFIC = "infersight.traffic"
TRAFFIC_PROBE = "probe"
PROBE_ENDPOINT = "infersight.probe.endpoint"
# Region the provider says served the request (Azure `x-ms-region`), which may differ from cloud.region.
SERVING_REGION = "infersight.serving_region"
# LLM gateways (LiteLLM): the upstream deployment a model group routes to.
DEPLOYMENT = "infersight.deployment"
# What a remaining rate limit counts: requests or tokens.
RATELIMIT_KIND = "infersight.ratelimit.kind"
# Why a request waits (vLLM `num_requests_waiting_by_reason`: capacity, deferred; `other` = the rest).
WAIT_REASON = "infersight.wait.reason"

# -- hardware (OTel semconv hw.*) ------------------------------------------------------------------
HW_ID = "hw.id"
HW_TYPE = "hw.type"
HW_STATE = "hw.state"
HW_ERROR_TYPE = "error.type"

# -- metric names ----------------------------------------------------------------------------------
INFERENCE_REQUESTS = "infersight.inference.requests"
INFERENCE_QUEUE_TIME = "infersight.inference.request.queue_time"
TOKEN_USAGE = "gen_ai.client.token.usage"
SERVER_REQUEST_DURATION = "gen_ai.server.request.duration"
SERVER_TTFT = "gen_ai.server.time_to_first_token"
SERVER_TPOT = "gen_ai.server.time_per_output_token"
HW_STATUS = "hw.status"
# Client-side GenAI metrics (OTel semconv gen_ai.client.*): what the probe measures.
CLIENT_OPERATION_DURATION = "gen_ai.client.operation.duration"
CLIENT_TIME_TO_FIRST_CHUNK = "gen_ai.client.operation.time_to_first_chunk"
CLIENT_TIME_PER_OUTPUT_CHUNK = "gen_ai.client.operation.time_per_output_chunk"
PROBE_REQUESTS = "infersight.probe.requests"
PROBE_TIME_TO_HEADERS = "infersight.probe.time_to_headers"
PROBE_TOKENS_TODAY = "infersight.probe.tokens_today"
PROBE_SKIPPED = "infersight.probe.skipped"
RATELIMIT_REMAINING = "infersight.ratelimit.remaining"
INFERENCE_SPEND = "infersight.inference.spend"
DEPLOYMENT_STATE = "infersight.inference.deployment.state"
HW_ERRORS = "hw.errors"
# Collector health (agent self metrics): 1 while the collector works, 0 while it is down; why it is down
# is the error.type of COLLECTOR_ERRORS (init, exception, timeout, busy, or the collector's own reason).
COLLECTOR_UP = "infersight.collector.up"
COLLECTOR_ERRORS = "infersight.agent.collection.errors"
COLLECTOR_NAME = "collector.name"
COLLECTOR_TYPE = "collector.type"
# Per-part reachability where a collector reads several (1 reachable, 0 not).
INFERENCE_ENDPOINT_UP = "infersight.inference.endpoint.up"
GPU_REACHABLE = "infersight.gpu.reachable"
NEURON_MONITOR_UP = "infersight.neuron.monitor.up"
PROBE_UP = "infersight.probe.up"

# -- server kinds ----------------------------------------------------------------------------------
ServerKind = Literal["vllm", "tgi", "triton", "sglang", "dynamo", "trtllm", "llmd", "litellm"]
SERVER_KINDS: tuple[ServerKind, ...] = ("vllm", "tgi", "triton", "sglang", "dynamo", "trtllm", "llmd", "litellm")

# -- HTTP headers ----------------------------------------------------------------------------------
# One per exported batch; the gateway acknowledges a re-send without storing it twice.
IDEMPOTENCY_HEADER = "Idempotency-Key"
