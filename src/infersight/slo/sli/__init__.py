"""One `SliSource` strategy per SLI kind: how a batch of SLOs of that kind is queried and folded.

A new SLI kind is a typed SLI in `slo/model.py`, its spec body in `slo/spec.py`, and one module
here registered in `SOURCES`; the evaluator itself never branches on the kind.
"""
from __future__ import annotations

from infersight.slo.sli.base import SliSource
from infersight.slo.sli.cost import CostSource
from infersight.slo.sli.health import HealthSource
from infersight.slo.sli.latency import LatencySource
from infersight.slo.sli.probe import ProbeAvailabilitySource, ProbeLatencySource
from infersight.slo.sli.ratio import RatioSource

SOURCES: dict[str, SliSource] = {s.kind: s for s in (RatioSource(), LatencySource(), CostSource(), HealthSource(),
                                                     ProbeAvailabilitySource(), ProbeLatencySource())}
