"""The collector protocol and the point model every collector emits.

A collector is told *what* to read through its constructor (NVML module, /proc root,
base URL, subprocess command) so it runs from fixtures; the agent decides *when*.
"""
from __future__ import annotations

import builtins
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, Protocol, runtime_checkable

from infersight.config import CollectorConfig

MetricKind = Literal["gauge", "counter", "updowncounter", "histogram"]
Temporality = Literal["cumulative", "delta"]
AttrValue = str | int | float | bool


@dataclass(frozen=True, slots=True)
class MetricSpec:
    """One entry of a collector's published metric list."""

    name: str
    kind: MetricKind
    unit: str
    description: str
    attributes: tuple[str, ...] = ()

    def point(self, value: float, attributes: Mapping[str, AttrValue] | None = None, **kw: Any) -> Point:
        return Point(name=self.name, kind=self.kind, unit=self.unit, value=value,
                     attributes=dict(attributes or {}), description=self.description, **kw)


@dataclass(frozen=True, slots=True)
class Point:
    """One data point. For histograms `value` is the sum and `bucket_counts` has len(bounds)+1 entries."""

    name: str
    kind: MetricKind
    value: float
    unit: str = ""
    attributes: Mapping[str, AttrValue] = field(default_factory=dict)
    description: str = ""
    temporality: Temporality = "cumulative"
    time_ns: int | None = None
    start_time_ns: int | None = None
    bounds: tuple[float, ...] = ()
    bucket_counts: tuple[int, ...] = ()
    count: int = 0

    def as_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"name": self.name, "type": self.kind, "unit": self.unit,
                             "value": self.value, "attributes": dict(self.attributes)}
        if self.kind in ("counter", "updowncounter", "histogram"):
            d["temporality"] = self.temporality
        if self.kind == "histogram":
            d.update(count=self.count, bounds=list(self.bounds), bucket_counts=list(self.bucket_counts))
        return d


def type_of(config: type[CollectorConfig]) -> str:
    """The collector type a Config accepts (its `type: Literal[...]` default), so the name is written once."""
    default = config.model_fields["type"].default
    if not isinstance(default, str):
        raise TypeError(f"{config.__name__}.type needs a Literal default naming the collector")
    return default


@dataclass(frozen=True, slots=True)
class Health:
    """What a collector says about itself after a `collect()` (the optional `health()` method).

    `up` False: the collector delivers nothing useful (NVML not initialised, neuron-monitor not running,
    no endpoint answering); `reason` is a short token (`error.type` of the agent's collection-errors
    counter) and `detail` one sentence for people. `problems`: sentences about parts that are down while
    the collector as a whole works (one of several endpoints refused, a GPU not answering).
    """

    up: bool
    reason: str = ""
    detail: str = ""
    problems: tuple[str, ...] = ()


UP = Health(True)


class CollectorDown(Exception):
    """Raised where a collector cannot run at all (e.g. `from_config` without a driver); `reason` is a token."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


def health_of(collector: object) -> Health:
    """The collector's `health()`, or up for collectors without one (those that fail by raising)."""
    probe = getattr(collector, "health", None)
    return probe() if callable(probe) else UP


@runtime_checkable
class Collector(Protocol):
    """What the agent runs. `collect` is synchronous and may block; the agent calls it off the loop.

    Optional: `health() -> Health` (asked after each collect; see `Health`), and
    `needs_two_samples: ClassVar[bool]` True where rates, deltas or GPM values need a previous collect
    (`infersight collect` then takes two samples).
    """

    type: ClassVar[str]
    Config: ClassVar[builtins.type[CollectorConfig]]
    metrics: Sequence[MetricSpec]

    @classmethod
    def from_config(cls, cfg: Any) -> Collector: ...

    def collect(self) -> Iterable[Point]: ...

    def close(self) -> None: ...
