"""Scripted incidents: when each one starts and ends (relative to the demo's start) and what it changes.

Each incident starts shortly before the demo starts (so the backfilled tail already burns budget and
the first SLO evaluations fire) and ends a few minutes into the live run, so its alert resolves while
the demo runs. The effects are read by the workload model (`latency_factor`, `error_ratio`,
`token_factor`) and by the NVML replay driver (`xid`).
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

Kind = Literal["ttft_regression", "error_spike", "xid", "cost_overrun"]


@dataclass(frozen=True)
class Incident:
    name: str
    kind: Kind
    start: float  # epoch seconds
    end: float
    cloud: str
    region: str | None = None
    accelerator: str | None = None
    provider: str | None = None  # API deployments (gen_ai.provider.name)
    magnitude: float = 1.0
    slo: str = ""

    def active(self, t: float) -> bool:
        return self.start <= t < self.end

    def describe(self, t0: float) -> str:
        where = "/".join(x for x in (self.cloud, self.region, self.accelerator, self.provider) if x)
        return (f"{self.name} on {where}: from {(self.start - t0) / 60:+.0f} min to {(self.end - t0) / 60:+.0f} min "
                f"(fires {self.slo})")


def default_script(t0: float, scale: float = 1.0) -> tuple[Incident, ...]:
    """The demo's incidents around `t0`; `scale` stretches the live part (minutes after t0)."""
    m = 60.0

    def at(minutes: float) -> float:
        return t0 + minutes * m * (scale if minutes > 0 else 1.0)

    return (
        Incident("azure TTFT regression", "ttft_regression", at(-15), at(6), "azure", region="eastus",
                 magnitude=6.0, slo="demo-ttft"),
        Incident("Trainium error spike", "error_spike", at(-12), at(5), "aws", accelerator="trainium",
                 magnitude=0.25, slo="demo-availability"),
        Incident("GPU XID 79 (fell off the bus)", "xid", at(-10), at(4), "oracle_cloud", region="us-ashburn-1",
                 magnitude=79, slo="demo-gpu-health"),
        Incident("Vertex AI cost overrun (runaway long prompts)", "cost_overrun", at(-30), at(7), "gcp",
                 provider="gcp.vertex_ai", magnitude=120.0, slo="demo-api-spend"),
    )


class Script:
    """The effects of a set of incidents at a point in time."""

    def __init__(self, incidents: Iterable[Incident]) -> None:
        self.incidents = tuple(incidents)

    def _matching(self, kind: Kind, t: float, cloud: str, region: str | None = None,
                  accelerator: str | None = None, provider: str | None = None) -> list[Incident]:
        return [i for i in self.incidents if i.kind == kind and i.active(t) and i.cloud == cloud
                and i.region in (None, region) and i.accelerator in (None, accelerator)
                and i.provider in (None, provider)]

    def latency_factor(self, t: float, cloud: str, region: str) -> float:
        f = 1.0
        for i in self._matching("ttft_regression", t, cloud, region):
            f *= i.magnitude
        return f

    def error_ratio(self, t: float, cloud: str, region: str, accelerator: str) -> float:
        return max((i.magnitude for i in self._matching("error_spike", t, cloud, region, accelerator)), default=0.0)

    def xid(self, t: float, cloud: str, region: str) -> int | None:
        hits = self._matching("xid", t, cloud, region)
        return int(hits[0].magnitude) if hits else None

    def token_factor(self, t: float, cloud: str, provider: str) -> float:
        hits = self._matching("cost_overrun", t, cloud, provider=provider)
        return hits[0].magnitude if hits else 1.0
