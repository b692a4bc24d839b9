"""docs/agent.md lists every metric the host collector and the agent itself emit, as they are."""
from __future__ import annotations

from pathlib import Path

import pytest

from infersight.agent.selfmetrics import METRICS as SELF_METRICS
from infersight.collectors.host import METRICS as HOST_METRICS

DOC = (Path(__file__).parent.parent / "docs" / "agent.md").read_text()
ROWS = {line.split("|")[1].strip(" `"): [c.strip(" `") for c in line.split("|")[2:5]]
        for line in DOC.splitlines() if line.startswith("| `")}


@pytest.mark.parametrize("spec", HOST_METRICS + SELF_METRICS, ids=lambda s: s.name)
def test_metric_documented_with_kind_unit_and_attributes(spec):
    assert spec.name in ROWS, f"{spec.name} missing from docs/agent.md"
    kind, unit, attrs = ROWS[spec.name]
    assert (kind, unit) == (spec.kind, spec.unit)
    assert [a.strip(" `") for a in attrs.split(",") if a.strip()] == list(spec.attributes)
