"""Collector lookup: the built-in types by name, any other through the `infersight.collectors` entry-point group.

The built-ins are also declared as entry points (pyproject.toml; a test keeps the two equal), but resolving them
needs no scan of every installed distribution's metadata: only a type that is not built-in (a third-party plugin)
pays for `importlib.metadata`.
"""
from __future__ import annotations

from collections.abc import Callable
from functools import cache
from typing import Any


def _host() -> Any:
    from infersight.collectors.host import HostCollector
    return HostCollector


def _nvml() -> Any:
    from infersight.collectors.nvml import NvmlCollector
    return NvmlCollector


def _neuron() -> Any:
    from infersight.collectors.neuron import NeuronCollector
    return NeuronCollector


def _inference() -> Any:
    from infersight.collectors.inference import InferenceCollector
    return InferenceCollector


def _probe() -> Any:
    from infersight.collectors.probe import ProbeCollector
    return ProbeCollector


# Imported on first use: a node without NVML never imports that collector.
BUILTIN: dict[str, Callable[[], Any]] = {
    "host": _host, "nvml": _nvml, "neuron": _neuron, "inference": _inference, "probe": _probe}


@cache
def available() -> dict[str, Any]:
    """Every installed collector type's entry point (the built-ins' included), from one metadata scan."""
    from importlib.metadata import entry_points

    return {ep.name: ep for ep in entry_points(group="infersight.collectors")}


def collector_class(type_name: str) -> Any:
    if type_name in BUILTIN:
        return BUILTIN[type_name]()
    eps = available()
    if type_name not in eps:
        raise ValueError(f"unknown collector type '{type_name}' (known: {', '.join(sorted(eps.keys() | BUILTIN))})")
    return eps[type_name].load()
