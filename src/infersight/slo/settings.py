"""SLO section of the configuration (owned by the SLO engine)."""
from pathlib import Path

from pydantic import BaseModel, ConfigDict


class SloSettings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    # SLO spec files or folders of them (also `infersight server --slo PATH`, repeatable).
    paths: tuple[Path, ...] = ()
