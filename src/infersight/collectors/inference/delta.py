"""Cumulative server counters → per-scrape deltas, with restart (counter reset) detection."""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from infersight.collectors.inference.model import Reading


@dataclass(frozen=True, slots=True)
class Delta:
    reading: Reading
    value: float
    count: float = 0.0
    buckets: tuple[float, ...] = ()


class DeltaTracker:
    """Previous cumulative values per series of one endpoint.

    The first successful scrape only sets the baseline: counters may hold hours of history we
    must not count again after an agent restart. A series first seen on a later scrape started
    from zero since the previous one (client libraries create labelled series on first use), so its
    whole value is the delta. A value that went down, changed histogram bounds, or a changed
    server start time mean the server restarted: the delta is then the new value itself.
    """

    def __init__(self) -> None:
        self._prev: dict[tuple, tuple[float, float, tuple[float, ...], tuple[float, ...]]] = {}
        self._primed = False
        self._start_time: float | None = None

    def update(self, readings: Iterable[Reading], start_time: float | None = None) -> list[Delta]:
        restarted = (start_time is not None and self._start_time is not None
                     and start_time != self._start_time)
        if start_time is not None:
            self._start_time = start_time
        out: list[Delta] = []
        current: dict[tuple, tuple[float, float, tuple[float, ...], tuple[float, ...]]] = {}
        for r in readings:
            key = (r.spec.name, r.key)
            cur = (r.value, r.count, r.bounds, r.buckets)
            current[key] = cur
            prev = self._prev.get(key)
            if prev is None:
                if not self._primed:
                    continue
            elif not restarted and not _reset(prev, cur):
                out.append(Delta(r, r.value - prev[0], r.count - prev[1],
                                 tuple(c - p for c, p in zip(r.buckets, prev[3], strict=True))))
                continue
            out.append(Delta(r, r.value, r.count, r.buckets))
        self._prev = current
        self._primed = True
        return out


def _reset(prev: tuple, cur: tuple) -> bool:
    value, count, bounds, buckets = cur
    if bounds != prev[2] or len(buckets) != len(prev[3]):
        return True
    if count < prev[1] or (not buckets and value < prev[0]):
        return True
    return any(c < p for c, p in zip(buckets, prev[3], strict=True))
