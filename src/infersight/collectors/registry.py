"""Collector lookup through the `infersight.collectors` entry-point group."""
from __future__ import annotations

from functools import cache
from importlib.metadata import entry_points
from typing import Any


@cache
def available() -> dict[str, Any]:
    return {ep.name: ep for ep in entry_points(group="infersight.collectors")}


def collector_class(type_name: str) -> Any:
    eps = available()
    if type_name not in eps:
        raise ValueError(f"unknown collector type '{type_name}' (known: {', '.join(sorted(eps))})")
    return eps[type_name].load()
