"""Helpers for collector tests: find emitted points by name and attributes."""
from __future__ import annotations

from infersight.collectors.base import Point


def pick(points: list[Point], name: str, **attrs) -> list[Point]:
    """Points named `name` whose attributes match; `a__b` in a keyword stands for `a.b`."""
    return [p for p in points if p.name == name
            and all(p.attributes.get(k.replace("__", ".")) == v for k, v in attrs.items())]


def one(points: list[Point], name: str, **attrs) -> float:
    found = pick(points, name, **attrs)
    assert len(found) == 1, (name, attrs, found)
    return found[0].value
