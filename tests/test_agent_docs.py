"""Every published metric list is documented as it is: each collector entry point's `metrics` in
docs/collectors/<type>.md, and the agent's own metrics in docs/agent.md (name, kind, unit, attributes)."""
from __future__ import annotations

from importlib.metadata import entry_points
from pathlib import Path

import pytest

from infersight.agent.selfmetrics import METRICS as SELF_METRICS
from infersight.collectors.base import MetricSpec

DOCS = Path(__file__).parent.parent / "docs"
COLLECTORS = sorted(entry_points(group="infersight.collectors"), key=lambda ep: ep.name)


def rows(doc: Path) -> dict[str, list[str]]:
    """The metric tables of a page: name -> [kind, unit, attributes]."""
    return {line.split("|")[1].strip(" `"): [c.strip(" `") for c in line.split("|")[2:5]]
            for line in doc.read_text().splitlines() if line.startswith("| `")}


def check_documented(spec: MetricSpec, documented: dict[str, list[str]], doc: str) -> None:
    assert spec.name in documented, f"{spec.name} missing from {doc}"
    kind, unit, attrs = documented[spec.name]
    assert (kind, unit) == (spec.kind, spec.unit), spec.name
    assert [a.strip(" `") for a in attrs.split(",") if a.strip()] == list(spec.attributes), spec.name


@pytest.mark.parametrize("ep", COLLECTORS, ids=lambda ep: ep.name)
def test_collector_metric_list_documented(ep):
    cls = ep.load()
    assert cls.type == ep.name == cls.Config.model_fields["type"].default  # the name is written once
    doc = DOCS / "collectors" / f"{cls.type}.md"
    documented = rows(doc)
    for spec in cls.metrics:
        check_documented(spec, documented, f"docs/collectors/{cls.type}.md")
    assert set(documented) == {s.name for s in cls.metrics}, "documented metrics the collector does not publish"


@pytest.mark.parametrize("spec", SELF_METRICS, ids=lambda s: s.name)
def test_agent_metric_documented(spec):
    check_documented(spec, rows(DOCS / "agent.md"), "docs/agent.md")
