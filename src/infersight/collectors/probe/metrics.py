"""The probe collector's published metric list (docs/collectors/probe.md) and histogram bounds.

Names are the OTel GenAI client metrics where they exist (`gen_ai.client.operation.duration`,
`gen_ai.client.token.usage`, `gen_ai.client.operation.time_to_first_chunk`,
`gen_ai.client.operation.time_per_output_chunk`) and `infersight.probe.*` where they do not. Every
point carries `infersight.traffic = probe`. None of these is a name the request rollups count
(they read `infersight.inference.requests`, the `gen_ai.client.token.usage` *sums* and the
`gen_ai.server.*` histograms), so probe traffic stays out of user-traffic SLIs and cost.
"""
from __future__ import annotations

from infersight import semconv as sc
from infersight.collectors.base import MetricSpec

COMMON = (sc.OPERATION_NAME, sc.PROVIDER_NAME, sc.MODEL, sc.SERVER_ADDRESS, sc.CLOUD_PROVIDER, sc.CLOUD_REGION,
          sc.TRAFFIC, sc.PROBE_ENDPOINT, sc.TENANT)
# Per-probe metrics also say which region the provider reported serving it from.
PER_REQUEST = (*COMMON, sc.SERVING_REGION)

REQUESTS = MetricSpec(sc.PROBE_REQUESTS, "counter", "{request}",
                      "Probes by outcome (good/bad); error.type timeout, connect, 4xx, 429, 5xx, stream_cut, "
                      "stream_error, invalid_response or config",
                      (*PER_REQUEST, sc.OUTCOME, sc.ERROR_TYPE, sc.HTTP_STATUS))
DURATION = MetricSpec(sc.CLIENT_OPERATION_DURATION, "histogram", "s",
                      "End-to-end probe duration: request start to the end of the stream (failed probes too)",
                      (*PER_REQUEST, sc.ERROR_TYPE))
TIME_TO_HEADERS = MetricSpec(sc.PROBE_TIME_TO_HEADERS, "histogram", "s",
                             "Request start to the response status line and headers", PER_REQUEST)
TTFT = MetricSpec(sc.CLIENT_TIME_TO_FIRST_CHUNK, "histogram", "s",
                  "Request start to the first chunk with content (a role-only chunk is not content)", PER_REQUEST)
TPOT = MetricSpec(sc.CLIENT_TIME_PER_OUTPUT_CHUNK, "histogram", "s",
                  "(last content chunk - first content chunk) / (output tokens - 1)", PER_REQUEST)
TOKENS = MetricSpec(sc.TOKEN_USAGE, "histogram", "{token}",
                    "Tokens of one probe from the usage block (type input or output), as OTel's client histogram",
                    (*PER_REQUEST, sc.TOKEN_TYPE))
RATELIMIT = MetricSpec(sc.RATELIMIT_REMAINING, "gauge", "1",
                       "Remaining requests or tokens the provider's rate-limit headers reported on the last probe",
                       (*COMMON, sc.RATELIMIT_KIND))
TOKENS_TODAY = MetricSpec(sc.PROBE_TOKENS_TODAY, "gauge", "{token}",
                          "Tokens the endpoint's probes used this UTC day (checked against daily_token_cap)", COMMON)
SKIPPED = MetricSpec(sc.PROBE_SKIPPED, "counter", "{probe}",
                     "Probes not sent: reason daily_token_cap or retry_after (a 429's Retry-After not yet passed)",
                     (*COMMON, "reason"))
UP = MetricSpec(sc.PROBE_UP, "gauge", "1", "1 when the endpoint's last probe succeeded, 0 when it failed", COMMON)

METRICS: tuple[MetricSpec, ...] = (REQUESTS, DURATION, TIME_TO_HEADERS, TTFT, TPOT, TOKENS, RATELIMIT,
                                   TOKENS_TODAY, SKIPPED, UP)

# Bucket bounds: the OTel GenAI semconv advice for each client histogram.
DURATION_BOUNDS = (0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92)
TTFT_BOUNDS = (0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0)
TPOT_BOUNDS = (0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5)
TOKEN_BOUNDS = (1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864)
