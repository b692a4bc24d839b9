"""Spec → model → generated rules (golden files), exact factors vs Sloth, OpenSLO import, the CLI."""
from __future__ import annotations

import os
import re
from fractions import Fraction
from pathlib import Path

import pytest
import yaml

from infersight.slo.model import CATALOGUES, burn_factor, compile_spec, load_catalogue, load_slos, render_rules
from infersight.slo.openslo import convert
from infersight.slo.spec import SpecError, load_file, parse_documents, parse_duration
from support.slo import FIXTURES_DIR, make_slo, slo_doc

ROOT = Path(__file__).parent.parent
GOLDEN = Path(__file__).parent / "golden" / "slo"
EXAMPLES = ROOT / "examples" / "slos"
SLO_FIXTURES = FIXTURES_DIR / "slo"
UPDATE = os.environ.get("UPDATE_GOLDEN") == "1"


def _golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if UPDATE:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    assert path.exists(), f"{path} is missing (UPDATE_GOLDEN=1 to write it, then review and commit it)"
    assert text == path.read_text(), f"{path} differs (UPDATE_GOLDEN=1 to accept)"


@pytest.mark.parametrize("example", sorted(p.name for p in EXAMPLES.glob("*.yaml")))
def test_examples_spec_to_rules_golden(example):
    docs = load_file(EXAMPLES / example)
    rendered = [render_rules(compile_spec(d)) for d in docs]
    _golden(example.replace(".yaml", ".rules.yaml"), yaml.safe_dump_all(rendered, sort_keys=False))


def test_google_30d_factors_match_sloth_generated_rules():
    """Sloth's rules carry the same factors, but its budget is a float (0.0009999999999999432)."""
    text = (SLO_FIXTURES / "sloth_getting-started.rules.gen.yml").read_text()
    pairs = re.findall(r"ratio_rate(\w+)\{[^}]*\} > \((\S+) \* (\S+)\)\) without", text)
    sloth = {}
    for i in range(0, len(pairs), 2):
        (short, f1, budget), (long_, f2, _) = pairs[i], pairs[i + 1]
        assert f1 == f2
        sloth[(parse_duration(long_), parse_duration(short))] = Fraction(f1)
    assert float(budget) != 0.001  # the float error exact arithmetic avoids
    slo = make_slo(objective=99.9)
    assert slo.budget == Fraction(1, 1000)
    ours = {(t.long_s, t.short_s): t.factor for t in slo.tiers}
    assert ours == sloth == {(3600, 300): Fraction(72, 5), (21600, 1800): 6, (86400, 7200): 3, (259200, 21600): 1}
    # And from Sloth's own AlertWindows catalogue: factor = budget percent × period ÷ long window.
    aw = yaml.safe_load((SLO_FIXTURES / "sloth_alertwindows_google-30d.yaml").read_text())["spec"]
    period = parse_duration(aw["sloPeriod"])
    for sev in ("page", "ticket"):
        for speed in ("quick", "slow"):
            w = aw[sev][speed]
            f = burn_factor(Fraction(str(w["errorBudgetPercent"])), period, parse_duration(w["longWindow"]))
            assert ours[(parse_duration(w["longWindow"]), parse_duration(w["shortWindow"]))] == f


def test_7d_and_28d_catalogues():
    aw = yaml.safe_load((SLO_FIXTURES / "sloth_alertwindows_7d.yaml").read_text())["spec"]
    slo = make_slo(window={"rolling": "7d"})
    got = {t.long_s: t.factor for t in slo.tiers}
    for sev in ("page", "ticket"):
        for speed in ("quick", "slow"):
            w = aw[sev][speed]
            assert got[parse_duration(w["longWindow"])] == Fraction(str(w["errorBudgetPercent"])) / 100 * 7 * 24 \
                * 3600 / parse_duration(w["longWindow"])
    assert got[3600] == Fraction("13.44") and got[259200] == Fraction("0.98")
    slo28 = make_slo(window={"rolling": "28d"})
    assert [t.factor for t in slo28.tiers] == [Fraction("13.44"), Fraction("5.6"), Fraction("2.8"), Fraction(14, 15)]
    assert set(CATALOGUES) == {"google-30d", "google-28d", "google-7d"}


def test_packaged_windows_are_sloths_numbers():
    """The catalogue files keep Sloth's AlertWindows numbers (28d: the 30d percents over 28 days)."""
    month, week = "sloth_alertwindows_google-30d.yaml", "sloth_alertwindows_7d.yaml"
    for name, fixture in (("google-30d", month), ("google-28d", month), ("google-7d", week)):
        aw = yaml.safe_load((SLO_FIXTURES / fixture).read_text())["spec"]
        want = {(f"{sev}-{'fast' if speed == 'quick' else 'slow'}", Fraction(str(w["errorBudgetPercent"])),
                 parse_duration(w["longWindow"]), parse_duration(w["shortWindow"]))
                for sev in ("page", "ticket") for speed, w in aw[sev].items()}
        cat = load_catalogue(name)
        assert {(t.name, t.budget_percent, t.long_s, t.short_s) for t in cat.tiers} == want
        assert cat.period_s == parse_duration(name.removeprefix("google-"))


def test_objective_is_exact():
    assert make_slo(objective=99.9).budget == Fraction(1, 1000)
    assert make_slo(objective=99.95).budget == Fraction(1, 2000)
    rules = render_rules(make_slo(objective=99.9))
    assert rules["error_budget"] == "0.001" and rules["rules"][0]["error_rate_threshold"] == "0.0144"


@pytest.mark.parametrize("mutate, message", [
    (lambda d: d["spec"].update(objective_percent=100), "objective_percent: Input should be less than 100"),
    (lambda d: d["spec"].update(window={"rolling": "1mo"}), "window.rolling: invalid duration '1mo'"),
    (lambda d: d["spec"].update(window={"rolling": "7d", "calendar": "month"}), "exactly one of rolling or calendar"),
    (lambda d: d["spec"].update(window={"calendar": "month", "time_zone": "Mars/Base"}), "unknown time zone"),
    (lambda d: d["spec"].update(sli={"ratio": {}, "latency": {"threshold_seconds": 1}}), "exactly one of ratio"),
    (lambda d: d["spec"].update(group_by=["k8s.pod.name"]), "'k8s.pod.name' is not available to ratio SLIs"),
    (lambda d: d["spec"].update(typo=1), "spec.typo: unknown field"),
    (lambda d: d["metadata"].update(name="Bad_Name"), "metadata.name: must be lowercase"),
    (lambda d: d["spec"].update(alerting={"tiers": [{"name": "x", "severity": "page", "factor": 2,
                                                      "long_window": "5m", "short_window": "1h"}]}),
     "short_window must be shorter than long_window"),
    (lambda d: d["spec"].update(sli={"accelerator_health": {}}), "set budgeting: timeslices"),
    (lambda d: d["spec"].update(sli={"latency": {"kind": "ttft", "threshold_seconds": 0.123}}),
     "threshold_seconds 0.123 is not a bucket boundary of the ttft latency rollup's span grid"),
    (lambda d: d["spec"].update(sli={"cost": {"metric": "spend_usd", "prices": {}}}), "needs budget_usd"),
])
def test_errors_name_file_slo_and_field(mutate, message):
    doc = slo_doc(name="checkout")
    mutate(doc)
    with pytest.raises(SpecError) as err:
        parse_documents([doc], "specs/checkout.yaml")
    assert str(err.value).startswith("specs/checkout.yaml: slo '")
    assert message in str(err.value)


def test_other_api_versions_point_to_import(tmp_path):
    f = tmp_path / "o.yaml"
    f.write_text((SLO_FIXTURES / "openslo_v1_ratio-timeslices.slo.yaml").read_text())
    with pytest.raises(SpecError, match="apiVersion: must be 'infersight/v1'.*import-openslo"):
        load_file(f)


def test_duplicate_names_across_files(tmp_path):
    for n in ("a", "b"):
        (tmp_path / f"{n}.yaml").write_text(yaml.safe_dump(slo_doc(name="same")))
    with pytest.raises(SpecError, match=r"duplicate SLO name\(s\): \['same'\]"):
        load_slos([tmp_path])


@pytest.mark.parametrize("fixture", sorted(p.name for p in SLO_FIXTURES.glob("openslo_v1_*.yaml")))
def test_openslo_import_golden(fixture):
    docs = list(yaml.safe_load_all((SLO_FIXTURES / fixture).read_text()))
    res = convert(docs, fixture)
    if res.documents:
        parse_documents(res.documents, fixture)  # the converted specs validate
    text = yaml.safe_dump({"warnings": res.warnings, "documents": res.documents}, sort_keys=False)
    _golden(fixture.replace(".yaml", ".imported.yaml"), text)


def test_openslo_one_minute_calendar_window_warns():
    docs = list(yaml.safe_load_all((SLO_FIXTURES / "openslo_v1_timeslices-1m-window-bug.slo.yaml").read_text()))
    res = convert(docs, "bug.yaml")
    assert res.documents == []
    assert any("'1m'" in w and "one-minute" in w and "'1M'" in w for w in res.warnings)


def test_openslo_alert_conditions_become_tiers():
    docs = list(yaml.safe_load_all((SLO_FIXTURES / "openslo_v1_slo-inline-alertpolicies.yaml").read_text()))
    docs[0][0]["spec"]["timeWindow"][0]["duration"] = "1w"
    res = convert(docs, "x.yaml")
    (doc,) = res.documents
    assert doc["spec"]["window"] == {"calendar": "week", "time_zone": "America/New_York"}
    assert doc["spec"]["alerting"]["tiers"] == [{"name": "memory-usage-breach", "severity": "page", "factor": 2.0,
                                                 "long_window": "1h", "short_window": "5m", "for": "5m"}]
    assert doc["spec"]["objective_percent"] == 99.5 and doc["spec"]["timeslice"]["target_percent"] == 95.0
    assert any("conditionRef 'cpu-usage-breach' not found" in w for w in res.warnings)
    assert any("notification target 'devs-email-notification'" in w for w in res.warnings)


def _cli(capsys, *args):
    from infersight.cli.main import main

    code = main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_cli_validate_and_import(tmp_path, capsys):
    code, out, err = _cli(capsys, "slo", "validate", str(EXAMPLES / "availability.yaml"), "--rules")
    assert code == 0, err
    assert "ok (1 SLO: inference-availability)" in out and "factor: '14.4'" in out
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(slo_doc(name="bad", objective=0)))
    code, out, err = _cli(capsys, "slo", "validate", str(bad))
    assert code == 1 and f"{bad}: slo 'bad': spec.objective_percent" in err
    imported = tmp_path / "imported.yaml"
    code, out, err = _cli(capsys, "slo", "import-openslo", str(SLO_FIXTURES / "openslo_v1_ratio-timeslices.slo.yaml"),
                          "-o", str(imported))
    assert code == 0, err
    assert "warning:" in err
    assert _cli(capsys, "slo", "validate", str(imported))[0] == 0
    code, out, err = _cli(capsys, "slo", "import-openslo",
                          str(SLO_FIXTURES / "openslo_v1_timeslices-1m-window-bug.slo.yaml"))
    assert code == 1 and "one-minute calendar window" in err
    code, out, err = _cli(capsys, "slo", "status", "--data-dir", str(tmp_path / "nothing"))
    assert code == 2 and "no infersight store in" in err
    assert not (tmp_path / "nothing").exists()
    code, out, err = _cli(capsys, "silence", "add", "slo", "--server", "http://127.0.0.1:9")
    assert code == 2 and "invalid matcher 'slo'" in err
