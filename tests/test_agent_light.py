"""The agent imports and runs without the `server` extra (chDB, clickhouse-connect, pyarrow)."""
from __future__ import annotations

import json
import subprocess
import sys

import yaml

# Runs `infersight collect` in a fresh interpreter where the server-only packages cannot be imported.
BLOCKING_RUNNER = """
import importlib.abc, sys
BLOCKED = ("chdb", "clickhouse_connect", "pyarrow", "numpy")
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {name!r} (blocked: server extra absent)")
        return None
sys.meta_path.insert(0, Block())
from infersight.cli.main import main
code = main(sys.argv[1:])
loaded = sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED)
assert not loaded, loaded
sys.exit(code)
"""


def test_collect_runs_without_server_packages(tmp_path):
    cfg = tmp_path / "agent.yaml"
    cfg.write_text(yaml.safe_dump({"collectors": [{"type": "host"}]}))
    proc = subprocess.run([sys.executable, "-c", BLOCKING_RUNNER, "collect", "--config", str(cfg),
                           "--format", "json"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    points = json.loads(proc.stdout)
    points = points if isinstance(points, list) else points["points"]
    assert any(p["name"] == "system.memory.usage" for p in points)


def test_agent_help_and_config_check_without_server_packages(tmp_path):
    cfg = tmp_path / "agent.yaml"
    cfg.write_text(yaml.safe_dump({"collectors": [{"type": "host", "interval_seconds": 5}]}))
    proc = subprocess.run([sys.executable, "-c", BLOCKING_RUNNER, "config", "check", str(cfg)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "interval_seconds: 5.0" in proc.stdout
