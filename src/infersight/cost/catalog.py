"""Price catalog: API token prices (USD per 1M tokens) and accelerator capacity prices (USD/hour).

Prices are `Decimal` parsed from the YAML text itself (never through a float), so
`0.15` is exactly 0.15. Lookups return None for anything not priced: callers report that
volume as unpriced instead of counting it as free.
"""
from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal, get_args

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

CapacityType = Literal["on_demand", "reserved", "spot"]
CAPACITY_TYPES: tuple[CapacityType, ...] = get_args(CapacityType)


def as_capacity_type(value: str) -> CapacityType:
    """`value` (a node's infersight.capacity_type, free text) as a CapacityType; ValueError otherwise."""
    for known in CAPACITY_TYPES:
        if value == known:
            return known
    raise ValueError(f"capacity type {value!r} is not one of {', '.join(CAPACITY_TYPES)}")


class CatalogError(Exception):
    """A price file is unreadable or invalid; the message names the file and the key."""


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Rate(_Strict):
    """USD per 1M tokens. Cached input without its own price is charged as input."""

    input_usd_per_million: Decimal = Field(ge=0)
    output_usd_per_million: Decimal = Field(ge=0)
    cached_input_usd_per_million: Decimal | None = Field(None, ge=0)

    def cost(self, input_tokens: int, output_tokens: int, cached_tokens: int) -> Decimal:
        """Exact cost; `input_tokens` includes the cached ones (OTel GenAI and OpenAI usage semantics)."""
        cached = min(cached_tokens, input_tokens)
        cached_rate = self.input_usd_per_million if self.cached_input_usd_per_million is None \
            else self.cached_input_usd_per_million
        return ((input_tokens - cached) * self.input_usd_per_million + cached * cached_rate
                + output_tokens * self.output_usd_per_million) / Decimal(1_000_000)


class Tier(Rate):
    """Applies to requests whose input (context) is larger than `above_input_tokens`."""

    above_input_tokens: int = Field(gt=0)


class ApiPrice(Rate):
    provider: str = "*"
    model: str | None = None
    model_regex: str | None = None
    tiers: tuple[Tier, ...] = ()

    @model_validator(mode="after")
    def _one_matcher(self) -> ApiPrice:
        if (self.model is None) == (self.model_regex is None):
            raise ValueError("exactly one of model, model_regex is required")
        if self.model_regex is not None:
            try:
                re.compile(self.model_regex)
            except re.error as err:
                raise ValueError(f"model_regex: invalid regular expression: {err}") from None
        thresholds = [t.above_input_tokens for t in self.tiers]
        if thresholds != sorted(set(thresholds)):
            raise ValueError("tiers: above_input_tokens must be distinct and ascending")
        return self

    def rate(self, input_tokens: int) -> Rate:
        """The base rate, or the highest tier whose threshold the request's input exceeds."""
        chosen: Rate = self
        for tier in self.tiers:
            if input_tokens > tier.above_input_tokens:
                chosen = tier
        return chosen


class CapacityPrice(_Strict):
    cloud: str
    region: str = "*"
    instance_type: str
    on_demand_usd_per_hour: Decimal | None = Field(None, ge=0)
    reserved_usd_per_hour: Decimal | None = Field(None, ge=0)
    spot_usd_per_hour: Decimal | None = Field(None, ge=0)

    def per_hour(self, capacity_type: CapacityType) -> Decimal | None:
        return getattr(self, f"{capacity_type}_usd_per_hour")


class CatalogFile(_Strict):
    api: tuple[ApiPrice, ...] = ()
    capacity: tuple[CapacityPrice, ...] = ()

    @field_validator("api", "capacity", mode="before")
    @classmethod
    def _list(cls, v: Any) -> Any:
        return () if v is None else v


class Catalog:
    """Lookups over price entries in precedence order (earlier wins).

    API prices: exact model names first, then regexes, each in order; an entry's provider must
    equal the request's (`gen_ai.provider.name`, case-insensitive) unless it is `*`.
    Capacity prices: the first entry with a price for the purchase option, exact region before `*`.
    """

    def __init__(self, api: Iterable[ApiPrice] = (), capacity: Iterable[CapacityPrice] = ()) -> None:
        self.api = tuple(api)
        self.capacity = tuple(capacity)
        self._exact: dict[str, list[ApiPrice]] = {}
        for p in self.api:
            if p.model is not None:
                self._exact.setdefault(p.model, []).append(p)
        self._regex = [(re.compile(p.model_regex), p) for p in self.api if p.model_regex is not None]

    def merged(self, other: Catalog) -> Catalog:
        """This catalog's entries first, then the other's."""
        return Catalog(self.api + other.api, self.capacity + other.capacity)

    def api_price(self, provider: str, model: str) -> ApiPrice | None:
        provider = provider.lower()
        for p in self._exact.get(model, ()):
            if p.provider == "*" or p.provider.lower() == provider:
                return p
        for rx, p in self._regex:
            if (p.provider == "*" or p.provider.lower() == provider) and rx.search(model):
                return p
        return None

    def api_rate(self, provider: str, model: str, input_tokens: int = 0) -> Rate | None:
        price = self.api_price(provider, model)
        return None if price is None else price.rate(input_tokens)

    def tier_thresholds(self) -> tuple[int, ...]:
        return tuple(sorted({t.above_input_tokens for p in self.api for t in p.tiers}))

    def capacity_price(self, cloud: str, region: str, instance_type: str,
                       capacity_type: str) -> Decimal | None:
        for want_region in (region, "*"):
            for p in self.capacity:
                if (p.cloud.lower(), p.region, p.instance_type) == (cloud.lower(), want_region, instance_type):
                    price = p.per_hour(as_capacity_type(capacity_type))
                    if price is not None:
                        return price
        return None


class _DecimalLoader(yaml.SafeLoader):
    """YAML floats become Decimal from their literal text."""


def _decimal(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> Decimal:
    text = loader.construct_scalar(node).replace("_", "")
    if text.lower().lstrip("+-") in (".inf", ".nan"):
        raise yaml.constructor.ConstructorError(None, None, f"not a price: {text}", node.start_mark)
    return Decimal(text)


_DecimalLoader.add_constructor("tag:yaml.org,2002:float", _decimal)


def parse_catalog(data: Any, source: str) -> Catalog:
    try:
        f = CatalogFile.model_validate(data or {})
    except ValidationError as err:
        lines = []
        for e in err.errors():
            loc = ".".join(str(p) for p in e["loc"])
            lines.append(f"{source}: unknown key '{loc}'" if e["type"] == "extra_forbidden"
                         else f"{source}: {loc}: {e['msg']}")
        raise CatalogError("\n".join(lines)) from None
    return Catalog(f.api, f.capacity)


def load_catalog(path: str | Path) -> Catalog:
    p = Path(path)
    try:
        data = yaml.load(p.read_text(), Loader=_DecimalLoader)  # a SafeLoader subclass: no arbitrary objects
    except OSError as err:
        raise CatalogError(f"{p}: cannot read: {err.strerror}") from None
    except yaml.YAMLError as err:
        raise CatalogError(f"{p}: invalid YAML: {err}") from None
    return parse_catalog(data, str(p))


def combine(catalogs: Sequence[Catalog]) -> Catalog:
    out = Catalog()
    for c in catalogs:
        out = out.merged(c)
    return out
