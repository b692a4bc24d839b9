"""API-served models as an instrumented application sees them: one GenAI client span per request, sent with
the OTel SDK (`TracerProvider` → `BatchSpanProcessor` → the OTLP/HTTP span exporter) to the gateway."""
from __future__ import annotations

import random
from collections.abc import Iterable

from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import SpanKind, Status, StatusCode

from infersight import semconv
from infersight.demo.fleet import ApiDeployment
from infersight.demo.incidents import Script
from infersight.demo.workload import ApiRequest, api_requests

ENDPOINTS = {"azure.ai.openai": "demo-eastus2.openai.azure.com",
             "aws.bedrock": "bedrock-runtime.us-east-1.amazonaws.com",
             "gcp.vertex_ai": "us-central1-aiplatform.googleapis.com"}


class ApiClients:
    """One tracer provider (its own resource: the calling application in that cloud) per deployment."""

    def __init__(self, deployments: Iterable[ApiDeployment], traces_url: str, script: Script, seed: int = 0) -> None:
        self.script = script
        self.rng = random.Random(f"{seed}-api")
        self.sent = 0
        self._providers: list[tuple[ApiDeployment, TracerProvider]] = []
        for dep in deployments:
            provider = TracerProvider(resource=Resource({
                semconv.SERVICE_NAME: dep.service, semconv.CLOUD_PROVIDER: dep.cloud,
                semconv.CLOUD_REGION: dep.region, "deployment.environment": "demo"}))
            provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=traces_url, timeout=10),
                                                           max_queue_size=200_000, max_export_batch_size=4096,
                                                           schedule_delay_millis=1000))
            self._providers.append((dep, provider))

    @property
    def deployments(self) -> list[ApiDeployment]:
        return [d for d, _ in self._providers]

    def emit(self, t0: float, t1: float) -> int:
        """Spans for the requests each deployment served between `t0` and `t1` (epoch seconds)."""
        n = 0
        for dep, provider in self._providers:
            tracer = provider.get_tracer("infersight.demo")
            for r in api_requests(dep, self.script, t0, t1, self.rng):
                self._span(tracer, dep, r)
                n += 1
        self.sent += n
        return n

    @staticmethod
    def _span(tracer, dep: ApiDeployment, r: ApiRequest) -> None:
        start = int(r.start * 1e9)
        attrs = {semconv.OPERATION_NAME: "chat", semconv.PROVIDER_NAME: dep.provider, semconv.MODEL: dep.model,
                 "gen_ai.response.model": dep.model, semconv.USAGE_INPUT_TOKENS: r.input_tokens,
                 semconv.USAGE_OUTPUT_TOKENS: r.output_tokens, semconv.USAGE_CACHED_TOKENS: r.cached_tokens,
                 semconv.SERVER_ADDRESS: ENDPOINTS.get(dep.provider, dep.provider),
                 semconv.SERVER_TTFT: round(r.ttft, 4)}
        if r.error:
            attrs[semconv.ERROR_TYPE] = "503"
        span = tracer.start_span(f"chat {dep.model}", kind=SpanKind.CLIENT, start_time=start, attributes=attrs)
        if r.error:
            span.set_status(Status(StatusCode.ERROR, "service unavailable"))
        span.end(end_time=start + int(r.duration * 1e9))

    def flush(self, timeout_millis: int = 30_000) -> bool:
        return all(p.force_flush(timeout_millis) for _, p in self._providers)

    def shutdown(self) -> None:
        for _, p in self._providers:
            p.shutdown()
