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


# `infersight agent` exporting over OTLP/HTTP loads neither the server's stack nor the SDK, gRPC or requests, nor
# protobuf (the request is written in wire format directly), nor the SLO/cost/compare packages (their settings
# included: the agent reads its own sections of the file only), nor asyncio (its loop is threads and timers), nor
# concurrent.futures (its own Future), nor the IDNA codec (an ASCII endpoint host is resolved as bytes), nor json.
AGENT_BLOCKED = ("chdb", "clickhouse_connect", "pyarrow", "numpy", "asyncio", "aiohttp", "requests", "urllib3", "grpc",
                 "concurrent.futures", "encodings.idna", "stringprep", "unicodedata", "json",
                 "opentelemetry", "google.protobuf", "infersight.cli._common", "infersight.storage",
                 "infersight.gateway", "infersight.server", "infersight.slo", "infersight.cost", "infersight.compare",
                 "infersight.rollups", "infersight.webui", "infersight.demo")
AGENT_RUNNER = BLOCKING_RUNNER.replace('BLOCKED = ("chdb", "clickhouse_connect", "pyarrow", "numpy")',
                                       f"BLOCKED = {AGENT_BLOCKED!r}").replace(
    'if name.split(".")[0] in BLOCKED:', 'if any(name == b or name.startswith(b + ".") for b in BLOCKED):').replace(
    'loaded = sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED)',
    'loaded = sorted(m for m in sys.modules if any(m == b or m.startswith(b + ".") for b in BLOCKED))')


def test_agent_over_http_loads_no_server_sdk_grpc_or_requests(tmp_path, port):
    import signal
    import time

    from support.otlp_recorder import Recorder

    assert "BLOCKED = ('chdb'" in AGENT_RUNNER and "startswith(b" in AGENT_RUNNER
    recorder = Recorder(port).start()
    cfg = tmp_path / "agent.yaml"
    cfg.write_text(yaml.safe_dump({  # one file for node and server: the agent skips the server's sections
        "agent": {"exporter": {"endpoint": recorder.url, "spool_dir": str(tmp_path / "spool"),
                               "export_interval_seconds": 0.3}},
        "collectors": [{"type": "host", "interval_seconds": 0.2}],
        "server": {"listen": "127.0.0.1:0"}, "slo": {"interval_seconds": 5}, "cost": {}, "compare": {}}))
    proc = subprocess.Popen([sys.executable, "-c", AGENT_RUNNER, "agent", "--config", str(cfg)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not recorder.accepted() and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.1)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
        recorder.stop()
    assert proc.returncode == 0, err
    names = {name for r in recorder.accepted() for name, _ in r.points()}
    assert "system.memory.usage" in names and "infersight.collector.up" in names
