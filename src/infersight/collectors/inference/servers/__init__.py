"""Inference-server dialects: one module per server kind, each mapping its exposition onto the
normalised request model (`inference.metrics`, `inference.model`).

A dialect module exports `PREFIX` (how its metric names start, for auto-detection), `FAMILIES`
(the families it reads; the collector parses only those lines) and `readings(families, ctx)`.
A new server goes into a new module here plus one entry in `SERVERS` and in `metrics.ServerKind`.
"""
from __future__ import annotations

from types import ModuleType

from infersight.collectors.inference.metrics import ServerKind
from infersight.collectors.inference.servers import sglang, tgi, triton, vllm

SERVERS: dict[ServerKind, ModuleType] = {"vllm": vllm, "tgi": tgi, "triton": triton, "sglang": sglang}
