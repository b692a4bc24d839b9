"""Cost: catalog, importers' unit conversion, tiers, exact derivation, unpriced volume, the report CLI."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from decimal import Decimal
from fractions import Fraction
from pathlib import Path

import pytest
import yaml

from infersight.config import ConfigError, parse_config
from infersight.cost.catalog import CatalogError, Rate, _DecimalLoader, load_catalog, parse_catalog
from infersight.cost.derive import Line, as_dict, derive
from infersight.cost.importers import from_langfuse, load_import
from infersight.cost.usage import ApiUsage, NodeUptime, ServedUsage, StoreSource, api_usage, node_uptime, served_usage
from support.paths import FIXTURES

ROOT = Path(__file__).resolve().parent.parent
CATALOG = """
api:
  - provider: openai
    model: gpt-4o
    input_usd_per_million: 2.50
    output_usd_per_million: 10.00
    cached_input_usd_per_million: 1.25
  - provider: '*'
    model_regex: '^gpt-4o'
    input_usd_per_million: 99
    output_usd_per_million: 99
  - provider: gcp.gemini
    model_regex: '^gemini-1\\.5-pro'
    input_usd_per_million: 1.25
    output_usd_per_million: 5
    tiers:
      - {above_input_tokens: 128000, input_usd_per_million: 2.5, output_usd_per_million: 10}
      - {above_input_tokens: 1000000, input_usd_per_million: 5, output_usd_per_million: 20}
capacity:
  - {cloud: aws, region: us-east-1, instance_type: p5.48xlarge, on_demand_usd_per_hour: 98.32}
  - {cloud: gcp, region: '*', instance_type: a3-highgpu-8g, on_demand_usd_per_hour: 88.49, spot_usd_per_hour: 29.00}
  - {cloud: gcp, region: us-central1, instance_type: a3-highgpu-8g, on_demand_usd_per_hour: 80}
"""


def catalog(text: str = CATALOG):
    return parse_catalog(yaml.load(text, Loader=_DecimalLoader), "test.yaml")


def test_catalog_prices_are_exact_and_matched_in_order():
    c = catalog()
    r = c.api_rate("openai", "gpt-4o")
    assert r.input_usd_per_million == Decimal("2.50") and r.cached_input_usd_per_million == Decimal("1.25")
    assert c.api_rate("OpenAI", "gpt-4o").output_usd_per_million == 10  # provider is case-insensitive
    # The exact entry is for openai only; another provider falls through to the '*' regex.
    assert c.api_rate("azure.ai.openai", "gpt-4o").input_usd_per_million == 99
    assert c.api_rate("openai", "gpt-4o-2024-08-06").input_usd_per_million == 99
    assert c.api_rate("openai", "gemini-1.5-pro") is None  # wrong provider for the gemini entry
    assert c.api_rate("openai", "my-finetune") is None
    assert c.capacity_price("gcp", "us-central1", "a3-highgpu-8g", "on_demand") == 80  # exact region first
    assert c.capacity_price("gcp", "europe-west4", "a3-highgpu-8g", "spot") == Decimal("29.00")
    assert c.capacity_price("gcp", "us-central1", "a3-highgpu-8g", "spot") == 29  # option missing: `*` entry
    assert c.capacity_price("aws", "us-east-1", "p5.48xlarge", "spot") is None  # no spot price: unpriced
    assert c.capacity_price("aws", "us-west-2", "p5.48xlarge", "on_demand") is None
    # 0.1 + 0.2 in binary floating point is not 0.3; prices read from YAML text are.
    tiny = catalog("api: [{model: m, input_usd_per_million: 0.1, output_usd_per_million: 0.2}]").api_rate("x", "m")
    assert tiny.input_usd_per_million + tiny.output_usd_per_million == Decimal("0.3")


def test_rate_arithmetic_by_hand():
    r = catalog().api_rate("openai", "gpt-4o")
    # 200 uncached x 2.50 + 1000 cached x 1.25 + 300 output x 10 = 500 + 1250 + 3000 = 4750 per 1M
    assert r.cost(1200, 300, 1000) == Decimal("0.00475")
    # Without a cached price, cached input is charged as input: (1000 x 2 + 10 x 8) / 1M
    assert Rate(input_usd_per_million=2, output_usd_per_million=8).cost(1000, 10, 600) == Decimal("0.00208")


def test_context_length_tiers():
    c = catalog()
    assert c.api_rate("gcp.gemini", "gemini-1.5-pro-002", 128000).input_usd_per_million == Decimal("1.25")
    assert c.api_rate("gcp.gemini", "gemini-1.5-pro-002", 128001).input_usd_per_million == Decimal("2.5")
    assert c.api_rate("gcp.gemini", "gemini-1.5-pro-002", 2_000_000).output_usd_per_million == 20
    assert c.tier_thresholds() == (128000, 1000000)
    # 200k input at the >128k tier: (200000 x 2.5 + 1000 x 10) / 1M
    assert c.api_rate("gcp.gemini", "gemini-1.5-pro", 200000).cost(200000, 1000, 0) == Decimal("0.51")


@pytest.mark.parametrize("text, message", [
    ("api: [{model: m, input_usd_per_million: 1, output_usd_per_million: 1, price: 3}]", "unknown key 'api.0.price'"),
    ("api: [{input_usd_per_million: 1, output_usd_per_million: 1}]", "exactly one of model, model_regex"),
    ("api: [{model_regex: '(', input_usd_per_million: 1, output_usd_per_million: 1}]", "invalid regular expression"),
    ("api: [{model: m, input_usd_per_million: -1, output_usd_per_million: 1}]", "api.0.input_usd_per_million"),
    ("api: [{model: m, input_usd_per_million: 1, output_usd_per_million: 1, tiers: [{above_input_tokens: 9, "
     "input_usd_per_million: 1, output_usd_per_million: 1}, {above_input_tokens: 5, input_usd_per_million: 1, "
     "output_usd_per_million: 1}]}]", "ascending"),
    ("capacity: [{cloud: aws, instance_type: x, hourly: 3}]", "unknown key 'capacity.0.hourly'"),
])
def test_catalog_errors_name_the_key(text, message):
    with pytest.raises(CatalogError, match=message):
        catalog(text)


def test_load_catalog_file_errors(tmp_path):
    assert len(load_catalog(ROOT / "examples" / "prices.yaml").capacity) == 4
    with pytest.raises(CatalogError, match="cannot read"):
        load_catalog(tmp_path / "missing.yaml")
    (tmp_path / "bad.yaml").write_text("api: [\n")
    with pytest.raises(CatalogError, match="invalid YAML"):
        load_catalog(tmp_path / "bad.yaml")


def test_openlit_import_converts_per_1k_to_per_million():
    c = load_import("openlit", FIXTURES / "pricing" / "openlit_pricing.json", provider="openai")
    assert len([p for p in c.api if p.output_usd_per_million or p.model.startswith("gpt")]) >= 170
    r = c.api_rate("openai", "gpt-4o")  # promptPrice 0.0025, completionPrice 0.01, cacheReadPrice 0.00125
    assert (r.input_usd_per_million, r.output_usd_per_million, r.cached_input_usd_per_million) == \
        (Decimal("2.5"), Decimal("10"), Decimal("1.25"))
    r = c.api_rate("openai", "claude-3-opus-20240229")  # 0.015 / 0.075 / 0.0015 per 1K
    assert (r.input_usd_per_million, r.output_usd_per_million, r.cached_input_usd_per_million) == \
        (15, 75, Decimal("1.5"))
    r = c.api_rate("openai", "gpt-4.1-nano-2025-04-14")  # no cacheReadPrice: cached charged as input
    assert r.cached_input_usd_per_million is None and r.input_usd_per_million == Decimal("0.1")
    emb = c.api_rate("openai", "text-embedding-3-small")  # 2e-05 per 1K, exactly 0.02 per 1M
    assert emb.input_usd_per_million == Decimal("0.02") and emb.output_usd_per_million == 0
    assert c.api_rate("anthropic", "gpt-4o") is None  # imported for provider openai only
    assert c.api_rate("openai", "dall-e-3") is None  # images are not token-priced


def test_langfuse_import_converts_per_token_to_per_million():
    c = load_import("langfuse", FIXTURES / "pricing" / "langfuse_default-model-prices_excerpt.json")
    r = c.api_rate("openai", "openai/GPT-4o")  # matchPattern is case-insensitive, optional openai/ prefix
    assert (r.input_usd_per_million, r.output_usd_per_million, r.cached_input_usd_per_million) == \
        (Decimal("2.5"), Decimal("10"), Decimal("1.25"))
    assert c.api_rate("openai", "gpt-4o-mini") is None  # anchored pattern
    r = c.api_rate("openai", "gpt-4o-2024-05-13")
    assert (r.input_usd_per_million, r.output_usd_per_million, r.cached_input_usd_per_million) == (5, 15, None)
    r = c.api_rate("openai", "text-ada-001")  # a `total` price: 0.000004 per token for input and output
    assert r.input_usd_per_million == r.output_usd_per_million == 4
    assert r.cost(1000, 500, 0) == Decimal("0.006")


def test_langfuse_input_size_tier_and_unsupported_conditions():
    base = {"id": "x", "modelName": "claude-sonnet-4", "matchPattern": "(?i)^claude-sonnet-4$"}
    default = {"isDefault": True, "priority": 0, "conditions": [],
               "prices": {"input": Decimal("0.000003"), "output": Decimal("0.000015")}}
    large = {"isDefault": False, "priority": 1,
             "conditions": [{"usageDetailPattern": "input", "operator": "gt", "value": 200000}],
             "prices": {"input": Decimal("0.000006"), "output": Decimal("0.0000225")}}
    c = from_langfuse([{**base, "pricingTiers": [default, large]}])
    assert c.api_rate("anthropic", "claude-sonnet-4", 200000).input_usd_per_million == 3
    r = c.api_rate("anthropic", "claude-sonnet-4", 200001)
    assert (r.input_usd_per_million, r.output_usd_per_million) == (6, Decimal("22.5"))
    odd = {**large, "conditions": [{"usageDetailPattern": "output", "operator": "lt", "value": 5}]}
    with pytest.raises(CatalogError, match="claude-sonnet-4: unsupported tier conditions"):
        from_langfuse([{**base, "pricingTiers": [default, odd]}])
    with pytest.raises(CatalogError, match="expected a JSON array"):
        from_langfuse({"chat": {}})


def test_cost_settings_in_config(tmp_path):
    cfg = parse_config({"cost": {"catalogs": ["prices.yaml"], "default_capacity_type": "spot",
                                 "imports": [{"format": "openlit", "path": "pricing.json", "provider": "openai"}]}})
    assert cfg.cost.imports[0].provider == "openai" and cfg.cost.default_capacity_type == "spot"
    with pytest.raises(ConfigError, match="unknown key 'cost.catalog'"):
        parse_config({"cost": {"catalog": "prices.yaml"}})
    with pytest.raises(ConfigError, match="cost.imports.0.format"):
        parse_config({"cost": {"imports": [{"format": "litellm", "path": "x.json"}]}})


API = [
    # (600 x 2.5 + 3000 x 1.25 + 900 x 10) / 1M = 0.01425
    ApiUsage("azure", "westeurope", "app-1", "openai", "gpt-4o", "legal", 0, 3, 3600, 900, 3000),
    # >128k tier: (200000 x 2.5 + 1000 x 10) / 1M = 0.51
    ApiUsage("azure", "westeurope", "app-1", "gcp.gemini", "gemini-1.5-pro", "legal", 128001, 1, 200000, 1000, 0),
    # base: (10000 x 1.25 + 2000 x 5) / 1M = 0.0225
    ApiUsage("azure", "westeurope", "app-1", "gcp.gemini", "gemini-1.5-pro", "ads", 0, 2, 10000, 2000, 0),
    ApiUsage("azure", "westeurope", "app-1", "openai", "my-finetune", "ads", 0, 5, 1000, 500, 0),
]
SERVED = [
    ServedUsage("aws", "us-east-1", "gpu-1", "vllm", "llama", "search", 30, 9000, 3000, 0),
    ServedUsage("aws", "us-east-1", "gpu-1", "vllm", "llama", "ads", 10, 1000, 1000, 0),
    ServedUsage("gcp", "us-central1", "gpu-2", "sglang", "mistral", "search", 7, 700, 500, 0),
    ServedUsage("aws", "us-east-1", "gpu-4", "vllm", "llama", "ads", 4, 400, 200, 0),
    ServedUsage("aws", "us-east-1", "gpu-5", "triton", "densenet", "search", 8, 0, 0, 0),
]
NODES = [
    NodeUptime("aws", "us-east-1", "gpu-1", "p5.48xlarge", "", 90),  # 1.5 h x 98.32 = 147.48 (default on_demand)
    NodeUptime("gcp", "us-central1", "gpu-2", "a3-highgpu-8g", "spot", 60),  # 1 h x 29.00
    NodeUptime("gcp", "europe-west4", "gpu-3", "a3-highgpu-8g", "on_demand", 30),  # idle: 0.5 h x 88.49 = 44.245
    NodeUptime("aws", "us-east-1", "gpu-4", "g6.xlarge", "spot", 120),  # no price: 2 unpriced node-hours
]


def test_derivation_by_cloud_and_model_by_hand():
    rep = derive(catalog(), API, SERVED, NODES, ("cloud", "model"))
    lines = {ln.key: ln for ln in rep.lines}
    llama = lines[("aws", "llama")]
    assert llama.node_usd == Fraction("147.48") and llama.node_hours == Fraction(3, 2)
    assert llama.requests == 44 and llama.output_tokens == 4200
    assert llama.priced_output_tokens == 4000 and llama.unpriced_tokens == 600 and llama.unpriced_node_hours == 2
    assert llama.unpriced_requests == 4  # gpu-4's traffic: its node has no price
    assert llama.unpriced == {"instance aws/us-east-1/g6.xlarge spot"}
    d = llama.derived()
    assert d["usd_per_million_output_tokens"] == 36870  # 147.48 / 4000 x 1M
    assert d["node_usd_per_hour"] == Fraction("98.32")
    assert d["usd_per_million_tokens"] == Fraction("147.48") / 14000 * 1_000_000
    densenet = lines[("aws", "densenet")]
    assert densenet.requests == densenet.unpriced_requests == 8 and densenet.spend_usd == 0
    assert densenet.unpriced == {"host aws/us-east-1/gpu-5: no node uptime"}
    gpt = lines[("azure", "gpt-4o")]
    assert gpt.api_usd == Fraction("0.01425") and gpt.derived()["usd_per_request"] == Fraction("0.00475")
    gemini = lines[("azure", "gemini-1.5-pro")]
    assert gemini.api_usd == Fraction("0.5325") and gemini.derived()["usd_per_request"] == Fraction("0.1775")
    unpriced = lines[("azure", "my-finetune")]
    assert (unpriced.unpriced_requests, unpriced.unpriced_tokens, unpriced.spend_usd) == (5, 1500, 0)
    assert unpriced.unpriced == {"model openai/my-finetune"} and unpriced.derived()["usd_per_request"] is None
    assert lines[("gcp", "mistral")].node_usd == 29
    idle = lines[("gcp", "(idle)")]
    assert idle.node_usd == Fraction("44.245") and idle.requests == 0
    total = rep.total
    assert total.spend_usd == Fraction("221.27175")  # 147.48 + 29 + 44.245 + 0.01425 + 0.5325
    assert total.unpriced_requests == 5 + 4 + 8 and total.unpriced_node_hours == 2
    out = as_dict(rep, total)
    assert out["spend_usd"] == "221.27175" and out["unpriced_requests"] == 17
    assert out["unpriced"] == ["host aws/us-east-1/gpu-5: no node uptime", "instance aws/us-east-1/g6.xlarge spot",
                               "model openai/my-finetune"]


def test_node_cost_attributed_to_tenants_by_generated_tokens():
    rep = derive(catalog(), [], SERVED[:2], NODES[:1], ("tenant",))
    lines = {ln.key: ln for ln in rep.lines}
    assert lines[("search",)].node_usd == Fraction("110.61")  # 3000 / 4000 of 147.48
    assert lines[("ads",)].node_usd == Fraction("36.87")
    assert lines[("search",)].node_usd + lines[("ads",)].node_usd == rep.total.node_usd
    # A host that generated no tokens splits by requests (e.g. Triton vision models).
    rows = [ServedUsage("aws", "us-east-1", "gpu-1", "triton", "densenet", t, n, 0, 0, 0)
            for t, n in (("a", 1), ("b", 3))]
    lines = {ln.key: ln for ln in derive(catalog(), [], rows, NODES[:1], ("tenant",)).lines}
    assert lines[("a",)].node_usd == Fraction("36.87") and lines[("b",)].node_usd == Fraction("110.61")
    with pytest.raises(ValueError, match="unknown dimension"):
        derive(catalog(), [], [], [], ("team",))


def _insert(store, table: str, rows: list[dict]) -> None:
    store.execute(f"INSERT INTO `{store.database}`.`{table}` FORMAT JSONEachRow "
                  + "\n".join(json.dumps(r) for r in rows))


def populate(store, now: int) -> None:
    """Spans from an app on Azure and one vLLM node on AWS, as the gateway would store them."""
    t = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(now - 300))
    app = {"cloud.provider": "azure", "cloud.region": "westeurope", "host.name": "app-1"}
    def span(model, provider, inp, out, cached=0):
        return {"Timestamp": t, "ResourceAttributes": app, "SpanName": "chat", "Duration": 1_000_000_000,
                "SpanAttributes": {"gen_ai.request.model": model, "gen_ai.provider.name": provider,
                                   "gen_ai.usage.input_tokens": str(inp), "gen_ai.usage.output_tokens": str(out),
                                   "gen_ai.usage.cache_read.input_tokens": str(cached), "infersight.tenant": "legal"}}
    _insert(store, "otel_traces", [span("gpt-4o", "openai", 1200, 300, 1000), span("gpt-4o", "openai", 1200, 300, 1000),
                                   span("gemini-1.5-pro", "gcp.gemini", 200000, 1000),
                                   span("gemini-1.5-pro", "gcp.gemini", 10000, 2000),
                                   span("my-finetune", "openai", 10, 10)])
    node = {"cloud.provider": "aws", "cloud.region": "us-east-1", "host.name": "gpu-1", "host.type": "p5.48xlarge"}
    attrs = {"gen_ai.request.model": "llama", "infersight.server.kind": "vllm", "infersight.tenant": "search"}
    def delta(name, value, **extra):
        return {"ResourceAttributes": node, "MetricName": name, "Attributes": {**attrs, **extra}, "TimeUnix": t,
                "StartTimeUnix": t, "Value": value, "AggregationTemporality": 1, "IsMonotonic": True}
    _insert(store, "otel_metrics_sum", [
        delta("infersight.inference.requests", 9, **{"infersight.request.outcome": "good"}),
        delta("gen_ai.client.token.usage", 4000, **{"gen_ai.token.type": "input"}),
        delta("gen_ai.client.token.usage", 1000, **{"gen_ai.token.type": "output"})])
    _insert(store, "otel_metrics_gauge", [
        {"ResourceAttributes": node, "MetricName": "infersight.inference.endpoint.up", "Value": 1,
         "TimeUnix": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(now - 60 * m))} for m in (2, 3, 4)])


def test_usage_queries_against_the_store(store):
    now = int(time.time())
    populate(store, now)
    src = StoreSource(store)
    c = catalog()
    api = api_usage(src, now - 3600, now + 60, c.tier_thresholds())
    bands = {(u.model, u.context_tokens): (u.requests, u.input_tokens) for u in api}
    assert bands == {("gpt-4o", 0): (2, 2400), ("gemini-1.5-pro", 128001): (1, 200000),
                     ("gemini-1.5-pro", 0): (1, 10000), ("my-finetune", 0): (1, 10)}
    served = served_usage(src, now - 3600, now + 60)
    assert [(s.host, s.kind, s.model, s.tenant, s.requests, s.output_tokens) for s in served] == \
        [("gpu-1", "vllm", "llama", "search", 9, 1000)]
    nodes = node_uptime(src, now - 3600, now + 60)
    assert [(n.host, n.host_type, n.minutes) for n in nodes] == [("gpu-1", "p5.48xlarge", 3)]
    assert api_usage(src, now - 60, now + 60, ()) == []  # outside the window
    rep = derive(c, api, served, nodes, ("cloud",))
    lines = {ln.key: ln for ln in rep.lines}
    # gpt-4o 2 x 0.00475, gemini 0.51 + 0.0225; node 3 min x 98.32/h = 4.916
    assert lines[("azure",)].api_usd == Fraction("0.542") and lines[("azure",)].unpriced_requests == 1
    assert lines[("aws",)].node_usd == Fraction("4.916")
    assert lines[("aws",)].derived()["usd_per_million_output_tokens"] == 4916


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    return subprocess.run([sys.executable, "-m", "infersight.cli", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=120)


def test_cost_report_cli_on_a_data_dir(tmp_path):
    data = tmp_path / "data"
    script = textwrap.dedent(f"""
        import sys, time
        sys.path[:0] = [{str(ROOT)!r}, {str(ROOT / "tests")!r}]
        from infersight.storage.embedded import EmbeddedStorage
        from infersight.server.tables import all_ddl
        from infersight.storage.schema import SchemaOptions, ensure_schema
        from tests.test_cost import populate
        s = EmbeddedStorage({str(data / "clickhouse")!r}, "otel")
        ensure_schema(s, SchemaOptions(database="otel"), all_ddl())
        populate(s, int(time.time()))
        s.close()
    """)
    subprocess.run([sys.executable, "-c", script], check=True, timeout=120,
                   env={**os.environ, "PYTHONPATH": str(ROOT / "src")})
    (tmp_path / "prices.yaml").write_text(CATALOG)
    res = run_cli("cost", "report", "--data-dir", str(data), "--prices", "prices.yaml", "--since", "1h",
                  "--by", "cloud,model", "--format", "json", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)
    lines = {(ln["cloud"], ln["model"]): ln for ln in doc["lines"]}
    assert lines[("aws", "llama")]["node_usd"] == "4.916"
    assert lines[("aws", "llama")]["usd_per_million_output_tokens"] == "4916"
    assert lines[("azure", "gpt-4o")]["usd_per_request"] == "0.00475"
    assert lines[("azure", "my-finetune")]["unpriced_requests"] == 1
    assert doc["total"]["spend_usd"] == "5.458" and doc["total"]["unpriced"] == ["model openai/my-finetune"]

    one = run_cli("cost", "report", "--data-dir", str(data), "--prices", "prices.yaml", "--since", "1h",
                  "--by", "cloud", "--model", "llama", "--format", "json", cwd=tmp_path)
    assert one.returncode == 0, one.stderr
    llama = {k: v for k, v in lines[("aws", "llama")].items() if k != "model"}
    assert json.loads(one.stdout)["lines"] == [llama]
    assert json.loads(one.stdout)["total"] == {**llama, "cloud": "total"}

    table = run_cli("cost", "report", "--data-dir", str(data), "--prices", "prices.yaml", "--by", "tenant",
                    cwd=tmp_path)
    assert table.returncode == 0, table.stderr
    out = table.stdout.splitlines()
    assert out[0].split()[:4] == ["tenant", "requests", "input_tokens", "output_tokens"]
    assert out[-1] == "unpriced: model openai/my-finetune"
    assert [ln.split()[0] for ln in out[2:-1]] == ["legal", "search", "total"]

    bad = run_cli("cost", "report", "--data-dir", str(tmp_path / "nothing"), cwd=tmp_path)
    assert bad.returncode == 1 and "no embedded store here" in bad.stderr
    (tmp_path / "broken.yaml").write_text("api: [{model: m}]\n")
    broken = run_cli("cost", "report", "--data-dir", str(data), "--prices", "broken.yaml", cwd=tmp_path)
    assert broken.returncode == 2 and "broken.yaml: api.0.input_usd_per_million" in broken.stderr
    since = run_cli("cost", "report", "--since", "yesterday", cwd=tmp_path)
    assert since.returncode == 2 and "invalid duration 'yesterday'" in since.stderr
    down = run_cli("cost", "report", "--server", "http://127.0.0.1:9", cwd=tmp_path)
    assert down.returncode == 1 and down.stderr.startswith("error: http://127.0.0.1:9/api/v1/")


def test_cost_sli_and_report_share_one_formula_cached_capped_at_input(store):
    """A span reporting more cached than input tokens: the SLO's spend equals the report's (cached <= input)."""
    # Imported here: the data-dir test runs this module's `populate` in a subprocess without tests/ on the path.
    from infersight.slo.evaluator import Evaluator
    from support.slo import make_slo

    now = int(time.time()) // 60 * 60 + 30
    t = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(now - 90))
    _insert(store, "otel_traces", [{
        "Timestamp": t, "ResourceAttributes": {"cloud.provider": "azure"}, "SpanName": "chat",
        "Duration": 1_000_000_000,
        "SpanAttributes": {"gen_ai.request.model": "gpt-4o", "gen_ai.provider.name": "openai",
                           "gen_ai.usage.input_tokens": "100", "gen_ai.usage.output_tokens": "10",
                           "gen_ai.usage.cache_read.input_tokens": "500"}}])
    c = catalog()
    report = derive(c, api_usage(StoreSource(store), now - 3600, now + 60, c.tier_thresholds()), [], [], ("cloud",))
    # 100 cached (capped from 500) x 1.25 + 10 output x 10 = 225 per 1M
    assert report.total.api_usd == Fraction("0.000225")
    rate = c.api_rate("openai", "gpt-4o")
    slo = make_slo(name="spend", sli={"cost": {"metric": "spend_usd", "budget_usd": 1, "prices": {
        "gpt-4o": {"input_usd_per_million": float(rate.input_usd_per_million),
                   "output_usd_per_million": float(rate.output_usd_per_million),
                   "cached_input_usd_per_million": float(rate.cached_input_usd_per_million)}}}})
    [res] = Evaluator(store).evaluate([slo], now)
    assert res.period.consumed == res.sli == report.total.api_usd


def test_report_of_one_model_reads_its_spans_and_every_models_capacity_share(store):
    """`build_report(model=...)` (compare's read) == the full report's lines of that model, byte for byte: API
    spans are read for the model only, while gpu-1's node cost stays split over both models it served."""
    from infersight.cost.report import build_report

    now = int(time.time())
    populate(store, now)
    t = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(now - 240))
    node = {"cloud.provider": "aws", "cloud.region": "us-east-1", "host.name": "gpu-1", "host.type": "p5.48xlarge"}
    attrs = {"gen_ai.request.model": "mistral", "infersight.server.kind": "vllm", "infersight.tenant": "search"}
    _insert(store, "otel_metrics_sum", [
        {"ResourceAttributes": node, "MetricName": name, "Attributes": {**attrs, **extra}, "TimeUnix": t,
         "StartTimeUnix": t, "Value": value, "AggregationTemporality": 1, "IsMonotonic": True}
        for name, value, extra in (("infersight.inference.requests", 3, {"infersight.request.outcome": "good"}),
                                   ("gen_ai.client.token.usage", 700, {"gen_ai.token.type": "input"}),
                                   ("gen_ai.client.token.usage", 3000, {"gen_ai.token.type": "output"}))])
    # The self-hosted model also through an API, and a model name that needs quoting.
    _insert(store, "otel_traces", [
        {"Timestamp": t, "ResourceAttributes": {"cloud.provider": "aws", "cloud.region": "us-east-1"},
         "SpanName": "chat", "Duration": 1, "SpanAttributes": {
             "gen_ai.request.model": m, "gen_ai.provider.name": "aws.bedrock",
             "gen_ai.usage.input_tokens": "50", "gen_ai.usage.output_tokens": "5"}} for m in ("llama", "it's")])
    src, c, window = StoreSource(store), catalog(), (now - 3600, now + 60)
    api = api_usage(src, *window, c.tier_thresholds())
    by = ("cloud", "region", "kind", "model")
    full = build_report(src, c, *window, by, "on_demand")
    models = {ln.key[3] for ln in full.lines}
    assert {"gpt-4o", "llama", "mistral", "it's"} <= models
    share = {ln.key[3]: ln.node_usd for ln in full.lines if ln.key[2] == "vllm"}
    assert share == {"llama": Fraction("4.916") / 4, "mistral": Fraction("4.916") * 3 / 4}  # output 1000 : 3000
    for m in sorted(models):
        assert api_usage(src, *window, c.tier_thresholds(), m) == [u for u in api if u.model == m]
        one = build_report(src, c, *window, by, "on_demand", m)
        assert [as_dict(one, ln) for ln in one.lines] == [as_dict(full, ln) for ln in full.lines if ln.key[3] == m]
        by_cloud = build_report(src, c, *window, ("cloud",), "on_demand", m)
        per_cloud = build_report(src, c, *window, ("cloud", "model"), "on_demand", m)
        assert [as_dict(by_cloud, ln) for ln in by_cloud.lines] == [
            {k: v for k, v in as_dict(per_cloud, ln).items() if k != "model"} for ln in per_cloud.lines]
        assert as_dict(by_cloud, by_cloud.total) == {
            k: v for k, v in as_dict(per_cloud, per_cloud.total).items() if k != "model"}
        total = Line(("total",) * 4)
        for ln in full.lines:
            if ln.key[3] == m:
                total.add(ln)
        assert as_dict(one, one.total) == as_dict(full, total)
    assert build_report(src, c, *window, by, "on_demand", "no-such-model").lines == []


async def test_server_report_of_one_model_is_the_clis(store, tmp_path, capsys):
    """`GET /api/v1/cost/report?model=` and `cost report --server --model` (its query, quoted): that model's part."""
    import asyncio

    from aiohttp import web
    from aiohttp.test_utils import TestClient, TestServer

    from infersight.cli.main import main
    from infersight.cost.report import attach, build_report, report_json

    now = int(time.time())
    populate(store, now)
    _insert(store, "otel_traces", [{
        "Timestamp": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(now - 300)), "SpanName": "chat", "Duration": 1,
        "ResourceAttributes": {"cloud.provider": "azure"},
        "SpanAttributes": {"gen_ai.request.model": "gpt-4o & co", "gen_ai.provider.name": "openai",
                           "gen_ai.usage.input_tokens": "7", "gen_ai.usage.output_tokens": "1"}}])
    (tmp_path / "prices.yaml").write_text(CATALOG)
    cfg = parse_config({"server": {"storage": {"database": store.database}},
                        "cost": {"catalogs": [str(tmp_path / "prices.yaml")]}})
    app = web.Application()
    attach(app, cfg, store)
    async with TestClient(TestServer(app)) as client:
        url = str(client.make_url("")).rstrip("/")
        for model in ("llama", "gpt-4o & co", "gpt-4o"):
            res = await client.get("/api/v1/cost/report", params={"since_seconds": "3600", "by": "cloud,model",
                                                                  "model": model})
            assert res.status == 200
            doc = await res.json()
            ref = report_json(build_report(StoreSource(store), catalog(), doc["start"], doc["end"],
                                           ("cloud", "model"), "on_demand", model), doc["start"], doc["end"], True)
            assert doc == ref and [ln["model"] for ln in doc["lines"]] == [model]
            rc = await asyncio.to_thread(main, ["cost", "report", "--server", url, "--since", "1h", "--by",
                                                "cloud,model", "--model", model, "--format", "json"])
            assert rc == 0
            assert json.loads(capsys.readouterr().out)["lines"] == doc["lines"]
