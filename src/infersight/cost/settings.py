"""`cost:` section of the configuration (owned by the cost module).

Kept free of infersight.config imports: config.py imports this module.
"""
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class PriceImport(_Strict):
    format: Literal["openlit", "langfuse"]
    path: Path
    # Provider (`gen_ai.provider.name`) the imported prices apply to; `*` = any.
    provider: str = "*"


class CostSettings(_Strict):
    # Price catalog YAML files (see examples/prices.yaml); earlier files win over later ones.
    catalogs: tuple[Path, ...] = ()
    # Published price lists, consulted after the catalogs.
    imports: tuple[PriceImport, ...] = ()
    # Purchase option of nodes whose resource has no `infersight.capacity_type` attribute.
    default_capacity_type: Literal["on_demand", "reserved", "spot"] = "on_demand"
