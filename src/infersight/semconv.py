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
HW_ERRORS = "hw.errors"

# -- server kinds ----------------------------------------------------------------------------------
ServerKind = Literal["vllm", "tgi", "triton", "sglang"]
SERVER_KINDS: tuple[ServerKind, ...] = ("vllm", "tgi", "triton", "sglang")

# -- HTTP headers ----------------------------------------------------------------------------------
# One per exported batch; the gateway acknowledges a re-send without storing it twice.
IDEMPOTENCY_HEADER = "Idempotency-Key"
