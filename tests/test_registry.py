"""Collector lookup: built-in types without a metadata scan, any other through the entry-point group."""
from __future__ import annotations

import importlib
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from infersight.collectors import registry

ROOT = Path(__file__).parent.parent


def test_builtin_table_is_the_declared_entry_points():
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["entry-points"]["infersight.collectors"]
    assert declared.keys() == registry.BUILTIN.keys()
    for name, value in declared.items():
        module, _, attr = value.partition(":")
        assert registry.BUILTIN[name]() is getattr(importlib.import_module(module), attr), name
    installed = {name: ep.value for name, ep in registry.available().items()}
    assert installed.items() >= declared.items()


# A fresh interpreter with a third-party distribution on sys.path (a .dist-info with its entry point, as pip
# installs one): built-ins resolve without importlib.metadata, the plugin through it.
PLUGIN_RUNNER = """
import sys
sys.path.insert(0, sys.argv[1])
from infersight.collectors.registry import collector_class
from infersight.collectors.host import HostCollector
assert collector_class("host") is HostCollector
assert "importlib.metadata" not in sys.modules, "a built-in type scanned the installed distributions"
cls = collector_class("acme")
import acme_collector
assert cls is acme_collector.AcmeCollector
print("ok")
"""


def test_third_party_collector_found_through_its_entry_point(tmp_path):
    (tmp_path / "acme_collector.py").write_text("class AcmeCollector:\n    type = 'acme'\n")
    dist = tmp_path / "acme_collector-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: acme-collector\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[infersight.collectors]\nacme = acme_collector:AcmeCollector\n")
    proc = subprocess.run([sys.executable, "-c", PLUGIN_RUNNER, str(tmp_path)], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "ok"


def test_unknown_type_names_the_known_ones():
    with pytest.raises(ValueError, match=r"unknown collector type 'nope' \(known: .*host, inference, neuron, nvml"):
        registry.collector_class("nope")
