"""The CLI next to a running server: a real `infersight server` subprocess holds the store, the commands find it.

Reference numbers: tests/test_cost.py's hand-derived report of the same populated store (`populate`).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
import urllib.request
from pathlib import Path

import pytest
import yaml
from tests.test_cost import CATALOG

from support.net import free_port

ROOT = Path(__file__).resolve().parent.parent
ENV = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "PYTHONUNBUFFERED": "1"}
SPEND_SLO = """
apiVersion: infersight/v1
kind: SLO
metadata: {name: app-spend}
spec:
  sli:
    cost:
      metric: spend_usd
      budget_usd: 1
      prices: {"*": {input_usd_per_million: 2.5, output_usd_per_million: 10}}
  objective_percent: 99
  window: {rolling: 1d}
"""

pytestmark = pytest.mark.e2e


def cli(*args: str, cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "infersight.cli", *args], cwd=cwd, env=ENV, capture_output=True,
                          text=True, timeout=timeout)


def populate_store(data: Path) -> None:
    """The store of tests/test_cost.populate, written by a process of its own (chDB: one store per process)."""
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
    subprocess.run([sys.executable, "-c", script], check=True, timeout=120, env=ENV)


def wait_ready(base: str, proc: subprocess.Popen, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()[0]
        try:
            with urllib.request.urlopen(f"{base}/readyz", timeout=2) as resp:
                if resp.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.3)
    raise AssertionError("server not ready")


@pytest.fixture(scope="module")
def running(tmp_path_factory):
    """A server on a populated store, with a price catalog and a spend SLO in its configuration."""
    tmp = tmp_path_factory.mktemp("cli-server")
    data = tmp / "data"
    populate_store(data)
    (tmp / "prices.yaml").write_text(CATALOG)
    (tmp / "slos").mkdir()
    (tmp / "slos" / "spend.yaml").write_text(SPEND_SLO)
    port = free_port()
    cfg = {"server": {"listen": f"127.0.0.1:{port}", "data_dir": str(data), "flush_interval_seconds": 0.1},
           "slo": {"paths": [str(tmp / "slos")], "interval_seconds": 1},
           "cost": {"catalogs": [str(tmp / "prices.yaml")]}}
    (tmp / "server.yaml").write_text(yaml.safe_dump(cfg))
    proc = subprocess.Popen([sys.executable, "-m", "infersight.cli", "server", "--config", str(tmp / "server.yaml")],
                            cwd=tmp, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_ready(base, proc)
        yield tmp, base, port, proc
    finally:
        proc.terminate()
        proc.communicate(timeout=60)


def test_commands_use_the_running_server_that_holds_the_store(running):
    tmp, base, _, _ = running
    status = cli("slo", "status", "--config", "server.yaml", cwd=tmp)
    assert status.returncode == 0, status.stderr
    assert f"using the server at {base}" in status.stderr and "Cannot lock" not in status.stderr
    assert "app-spend" in status.stdout
    line = next(ln for ln in status.stdout.splitlines() if ln.startswith("app-spend"))
    # Money as money with its budget, never "84.369 %": the spans' spend at the SLO's own prices.
    assert "$" in line and " of $1.00 budget" in line, line
    listed = cli("silence", "list", "--config", "server.yaml", cwd=tmp)
    assert listed.returncode == 0 and "using the server at" in listed.stderr, listed.stderr


def test_cost_report_through_the_server_uses_the_servers_catalog(running):
    tmp, base, port, _ = running
    # --server HOST:PORT and no --config or --prices: the server's catalog prices it (today: all unpriced).
    res = cli("cost", "report", "--server", f"127.0.0.1:{port}", "--since", "1h", "--by", "cloud,model",
              "--format", "json", cwd=tmp)
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)
    lines = {(ln["cloud"], ln["model"]): ln for ln in doc["lines"]}
    # The figures of tests/test_cost.py's hand derivation, at full precision in the JSON.
    assert lines[("aws", "llama")]["node_usd"] == "4.916"
    assert lines[("azure", "gpt-4o")]["usd_per_request"] == "0.00475"
    assert doc["total"]["spend_usd"] == "5.458" and doc["total"]["unpriced"] == ["model openai/my-finetune"]
    # Found from --config's server.listen: the same report, said on stderr.
    found = cli("cost", "report", "--config", "server.yaml", "--since", "1h", "--format", "json", cwd=tmp)
    assert found.returncode == 0 and "using the server at" in found.stderr, found.stderr
    assert json.loads(found.stdout)["total"]["spend_usd"] == "5.458"
    table = cli("cost", "report", "--server", base, "--since", "1h", "--by", "model", cwd=tmp)
    assert table.returncode == 0, table.stderr
    rows = {ln.split()[0]: ln.split() for ln in table.stdout.splitlines()[2:-1]}
    header = table.stdout.splitlines()[0].split()
    spend = header.index("spend_usd")
    assert rows["my-finetune"][spend] == "unpriced"  # not 0
    assert rows["total"][spend] == "$5.46"  # rounded for reading; the JSON keeps 5.458
    assert rows["gpt-4o"][spend] == "$0.0095" and rows["gpt-4o"][header.index("usd_per_million_tokens")] == "$3.17"


def test_locked_store_without_a_reachable_server_is_one_sentence(running):
    tmp, _, _, _ = running
    elsewhere = {"server": {"listen": f"127.0.0.1:{free_port()}", "data_dir": str(tmp / "data")}}
    (tmp / "elsewhere.yaml").write_text(yaml.safe_dump(elsewhere))
    for args in (("slo", "status"), ("silence", "list"), ("cost", "report")):
        res = cli(*args, "--config", "elsewhere.yaml", cwd=tmp)
        assert res.returncode != 0
        assert res.stderr.count("\n") == 1, res.stderr
        assert "locked by another process" in res.stderr and "no server answers at" in res.stderr, res.stderr


def test_server_on_a_busy_port_fails_in_one_line_before_creating_a_store(running, tmp_path):
    _, _, port, _ = running
    res = cli("server", "--data-dir", str(tmp_path / "new"), "--listen", f"127.0.0.1:{port}", cwd=tmp_path,
              timeout=60)
    assert res.returncode == 2
    assert res.stderr.strip().count("\n") == 0 and f"127.0.0.1:{port} is already in use" in res.stderr, res.stderr
    assert "Traceback" not in res.stderr
    assert not (tmp_path / "new").exists()
