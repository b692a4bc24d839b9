"""Synthetic probes of LLM endpoints (`type: probe`): one small streamed chat completion per
endpoint and interval, measured from the client side and marked as probe traffic."""
from infersight.collectors.probe.collector import ProbeCollector, ProbeConfig, ProbeEndpoint
from infersight.collectors.probe.metrics import METRICS
from infersight.collectors.probe.openai import HttpTransport, ProbeResult

__all__ = ["METRICS", "HttpTransport", "ProbeCollector", "ProbeConfig", "ProbeEndpoint", "ProbeResult"]
