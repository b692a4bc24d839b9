"""Importers for published price lists, converted exactly to USD per 1M tokens.

- OpenLIT `pricing.json`: `chat` models with promptPrice / completionPrice / cacheReadPrice in
  USD per 1K tokens (x 1000). `embeddings` (a scalar per 1K input tokens) become input-only
  prices. Images and audio are priced per item or second, not per token, and are skipped.
- Langfuse model prices: entries with `matchPattern` (a regex) and `pricingTiers`, prices in USD
  per token (x 1 000 000). The default tier is the base rate; tiers conditioned on input size
  (`usageDetailPattern` matching input, operator gt/gte) become context-length tiers. A `total`
  price charges input and output alike.
"""
from __future__ import annotations

import json
import re
from decimal import Decimal
from pathlib import Path
from typing import Any

from infersight.cost.catalog import ApiPrice, Catalog, CatalogError, Tier

PER_1K = Decimal(1000)
PER_TOKEN = Decimal(1_000_000)


def _read_json(path: str | Path) -> Any:
    p = Path(path)
    try:
        return json.loads(p.read_text(), parse_float=Decimal, parse_int=Decimal)
    except OSError as err:
        raise CatalogError(f"{p}: cannot read: {err.strerror}") from None
    except ValueError as err:
        raise CatalogError(f"{p}: invalid JSON: {err}") from None


def from_openlit(data: dict[str, Any], provider: str = "*", source: str = "openlit") -> Catalog:
    if not isinstance(data, dict) or not isinstance(data.get("chat", {}), dict):
        raise CatalogError(f"{source}: not an OpenLIT pricing.json (expected an object with 'chat')")
    out = []
    for model, p in (data.get("chat") or {}).items():
        try:
            out.append(ApiPrice(provider=provider, model=model,
                                input_usd_per_million=p["promptPrice"] * PER_1K,
                                output_usd_per_million=p["completionPrice"] * PER_1K,
                                cached_input_usd_per_million=(p["cacheReadPrice"] * PER_1K
                                                              if "cacheReadPrice" in p else None)))
        except (KeyError, TypeError) as err:
            raise CatalogError(f"{source}: chat.{model}: missing or invalid price {err}") from None
    for model, price in (data.get("embeddings") or {}).items():
        out.append(ApiPrice(provider=provider, model=model, input_usd_per_million=price * PER_1K,
                            output_usd_per_million=Decimal(0)))
    return Catalog(out)


def _langfuse_rate(prices: dict[str, Any]) -> dict[str, Decimal | None]:
    if "total" in prices and "input" not in prices:
        total = prices["total"] * PER_TOKEN
        return {"input_usd_per_million": total, "output_usd_per_million": total,
                "cached_input_usd_per_million": None}
    cached = prices.get("input_cache_read", prices.get("input_cached_tokens"))
    return {"input_usd_per_million": prices["input"] * PER_TOKEN,
            "output_usd_per_million": prices.get("output", Decimal(0)) * PER_TOKEN,
            "cached_input_usd_per_million": None if cached is None else cached * PER_TOKEN}


def _threshold(conditions: list[dict[str, Any]], where: str) -> int:
    """Langfuse tier conditions on input size → our `above_input_tokens`."""
    for c in conditions:
        if re.search(str(c.get("usageDetailPattern", "")), "input") and c.get("operator") in ("gt", "gte"):
            value = int(c["value"])
            return value if c["operator"] == "gt" else value - 1
    raise CatalogError(f"{where}: unsupported tier conditions {conditions!r} (only input token size gt/gte)")


def from_langfuse(data: list[dict[str, Any]], provider: str = "*", source: str = "langfuse") -> Catalog:
    if not isinstance(data, list):
        raise CatalogError(f"{source}: not a Langfuse model price list (expected a JSON array)")
    out = []
    for i, m in enumerate(data):
        where = f"{source}: [{i}] {m.get('modelName', '?')}"
        try:
            tiers = sorted(m["pricingTiers"], key=lambda t: t.get("priority", 0))
            base = next(t for t in tiers if t.get("isDefault"))
            extra = tuple(sorted((Tier(above_input_tokens=_threshold(t.get("conditions") or [], where),
                                       **_langfuse_rate(t["prices"])) for t in tiers if not t.get("isDefault")),
                                 key=lambda t: t.above_input_tokens))
            out.append(ApiPrice(provider=provider, model_regex=m["matchPattern"], tiers=extra,
                                **_langfuse_rate(base["prices"])))
        except (KeyError, TypeError, StopIteration) as err:
            raise CatalogError(f"{where}: missing or invalid field {err}") from None
        except ValueError as err:
            raise CatalogError(f"{where}: {err}") from None
    return Catalog(out)


def load_import(fmt: str, path: str | Path, provider: str = "*") -> Catalog:
    data = _read_json(path)
    if fmt == "openlit":
        return from_openlit(data, provider, str(path))
    if fmt == "langfuse":
        return from_langfuse(data, provider, str(path))
    raise CatalogError(f"{path}: unknown price list format {fmt!r} (openlit or langfuse)")
