"""SLO section of the configuration (owned by the SLO engine)."""
from pydantic import BaseModel, ConfigDict


class SloSettings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
