"""Inference-server dialects: one module per server kind, each mapping its exposition onto the
normalised request model (`inference.metrics`, `inference.model`).

A dialect module exports `PREFIX` (how its metric names start, a string or a tuple of them, for
auto-detection), `FAMILIES` (the families it reads; the collector parses only those lines) and
`readings(families, ctx)`. A new server goes into a new module here plus one entry in `SERVERS`
and in `semconv.ServerKind`.
"""
from __future__ import annotations

import json
from types import ModuleType

from infersight.collectors.inference.metrics import ServerKind
from infersight.collectors.inference.servers import dynamo, litellm, llmd, sglang, tgi, triton, trtllm, vllm

SERVERS: dict[ServerKind, ModuleType] = {"vllm": vllm, "tgi": tgi, "triton": triton, "sglang": sglang,
                                         "dynamo": dynamo, "trtllm": trtllm, "llmd": llmd, "litellm": litellm}


def explain_json(text: str) -> str:
    """Why a JSON answer is not a Prometheus exposition, and where the right one is."""
    try:
        data = json.loads(text)
    except ValueError:
        data = None
    if trtllm.is_iteration_stats(data):
        return trtllm.JSON_HINT
    return "answered JSON, not the Prometheus text exposition; point `url` at the server's Prometheus endpoint"
