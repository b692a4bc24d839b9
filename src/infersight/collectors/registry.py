"""Collector lookup: the built-in types by name, any other through the `infersight.collectors` entry-point group.

The built-ins are also declared as entry points (pyproject.toml; a test keeps the two equal), but resolving them
needs no scan of every installed distribution's metadata: only a type that is not built-in (a third-party plugin)
pays for `importlib.metadata`.
"""
from __future__ import annotations

import importlib
from functools import cache
from typing import Any

BUILTIN = {
    "host": "infersight.collectors.host:HostCollector",
    "nvml": "infersight.collectors.nvml:NvmlCollector",
    "neuron": "infersight.collectors.neuron:NeuronCollector",
    "inference": "infersight.collectors.inference:InferenceCollector",
    "probe": "infersight.collectors.probe:ProbeCollector",
}


@cache
def available() -> dict[str, Any]:
    """Every installed collector type's entry point (the built-ins' included), from one metadata scan."""
    from importlib.metadata import entry_points

    return {ep.name: ep for ep in entry_points(group="infersight.collectors")}


def collector_class(type_name: str) -> Any:
    if type_name in BUILTIN:
        module, _, name = BUILTIN[type_name].partition(":")
        return getattr(importlib.import_module(module), name)
    eps = available()
    if type_name not in eps:
        raise ValueError(f"unknown collector type '{type_name}' (known: {', '.join(sorted(eps.keys() | BUILTIN))})")
    return eps[type_name].load()
