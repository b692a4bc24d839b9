"""`compare:` section of the configuration (owned by the compare module; free of infersight.config imports)."""
from pydantic import BaseModel, ConfigDict, Field


class CompareSettings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    # GET /api/v1/routing answers from a cache this old at most (the SLO engine evaluates every
    # slo.interval_seconds; hints follow within one interval plus this).
    hint_refresh_seconds: float = Field(default=5.0, gt=0, le=3600)
    # Window of the traffic and $/1M tokens behind the routing hints (SLO state is always the engine's now).
    routing_window_seconds: int = Field(default=3600, ge=60, le=31 * 86400)
    # Longest `since` GET /api/v1/compare accepts.
    max_since_seconds: int = Field(default=31 * 86400, ge=60)
