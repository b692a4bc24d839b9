"""Cost section of the configuration (owned by the cost module)."""
from pydantic import BaseModel, ConfigDict


class CostSettings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
