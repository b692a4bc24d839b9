"""`config check`, `slo validate`, `query`, `--log-level`, `--version`: each run as the real command line."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from aiohttp.test_utils import TestClient, TestServer

from infersight.cli.config import mask_url
from infersight.cli.main import main
from infersight.config import QueryApiConfig, ServerConfig
from infersight.gateway.app import create_app

ROOT = Path(__file__).resolve().parent.parent
ENV = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
SLO = """
apiVersion: infersight/v1
kind: SLO
metadata: {{name: {name}}}
spec:
  sli: {{ratio: {{}}}}
  objective_percent: 99.9
  window: {{rolling: 30d}}
"""


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "infersight.cli", *args], cwd=cwd, env=ENV, capture_output=True,
                          text=True, timeout=120)


@pytest.mark.parametrize(("url", "masked"), [
    ("http://user:pw@127.0.0.1:8000/metrics", "http://user:***@127.0.0.1:8000/metrics"),
    ("http://tok@127.0.0.1:8000/", "http://***@127.0.0.1:8000/"),
    ("https://api.example/v1?api-key=abc&model=m", "https://api.example/v1?api-key=***&model=m"),
    ("https://x.blob.core.windows.net/c?sv=2024&sig=AbC%2F", "https://x.blob.core.windows.net/c?sv=2024&sig=***"),
    ("https://hooks.slack.com/services/T0/B0/XXXX", "https://hooks.slack.com/services/***"),
    ("https://events.pagerduty.com/integration/abc123/enqueue", "https://events.pagerduty.com/integration/***"),
    ("http://127.0.0.1:8000/metrics", "http://127.0.0.1:8000/metrics"),
])
def test_mask_url(url, masked):
    assert mask_url(url) == masked


def test_config_check_prints_collector_options_masks_urls_and_reports_every_error(tmp_path):
    cfg = {
        "server": {"listen": "0.0.0.0:4318"},
        "collectors": [
            {"type": "inference", "endpoints": [{"url": "http://vllm:s3cret@127.0.0.1:8000/metrics?token=t0k"}]},
            {"type": "host"}],
        "slo": {"receivers": [{"name": "ops", "type": "slack",
                               "url": "https://hooks.slack.com/services/T000/B000/SECRETPART"}]},
    }
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    res = cli("config", "check", "c.yaml", cwd=tmp_path)
    out = yaml.safe_load(res.stdout)
    inference = out["collectors"][0]
    assert inference["endpoints"][0]["url"] == "http://vllm:***@127.0.0.1:8000/metrics?token=***"
    assert "s3cret" not in res.stdout and "t0k" not in res.stdout and "SECRETPART" not in res.stdout
    assert out["slo"]["receivers"][0]["url"] == "https://hooks.slack.com/services/***"
    # Off loopback without a token: the server would refuse to start, so the check fails.
    assert res.returncode == 2
    assert "server.listen: 0.0.0.0:4318 is off loopback without server.auth_token" in res.stderr

    bad = {"server": {"bogus": 1, "flush_rows": "many"}, "collectors": [{"type": "host", "nope": 1}]}
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(bad))
    res = cli("config", "check", "bad.yaml", cwd=tmp_path)
    assert res.returncode == 2
    errors = res.stderr.splitlines()
    assert len(errors) == 3 and all(e.startswith("error: bad.yaml: ") for e in errors), res.stderr
    assert any("unknown key 'server.bogus'" in e for e in errors)
    assert any("server.flush_rows" in e for e in errors) and any("collectors.0.nope" in e for e in errors)


def test_slo_validate_takes_folders_rejects_duplicates_warns_on_empty_files(tmp_path):
    specs = tmp_path / "slos"
    specs.mkdir()
    (specs / "a.yaml").write_text(SLO.format(name="avail"))
    (specs / "b.yml").write_text(SLO.format(name="other"))
    (specs / "notes.txt").write_text("not a spec")
    (specs / "empty.yaml").write_text("# nothing yet\n")
    res = cli("slo", "validate", "slos", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert "a.yaml: ok (1 SLO: avail)" in res.stdout and "b.yml: ok (1 SLO: other)" in res.stdout
    assert "warning: slos/empty.yaml: no SLO in this file" in res.stderr and "notes.txt" not in res.stdout
    (tmp_path / "dup.yaml").write_text(SLO.format(name="avail"))
    res = cli("slo", "validate", "slos", "dup.yaml", cwd=tmp_path)
    assert res.returncode == 1
    assert "dup.yaml: SLO 'avail' is already defined in slos/a.yaml" in res.stderr
    res = cli("slo", "validate", "missing", cwd=tmp_path)
    assert res.returncode == 1 and "missing: no such file or folder" in res.stderr


def test_log_level_and_version(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--log-level", "loud", "slo", "validate", "x.yaml"])
    assert exc.value.code == 2
    assert "unknown log level 'loud' (choose from debug, info, warning, error, critical)" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0 and capsys.readouterr().out.startswith("infersight 0.")


@pytest.fixture
async def server(store):
    cfg = ServerConfig(auth_token="tok", query=QueryApiConfig(max_rows=3))
    async with TestClient(TestServer(create_app(cfg, store), host="127.0.0.1")) as c:
        yield c


async def run_query(*args: str) -> tuple[int, str, str]:
    import asyncio

    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "infersight.cli", "query", *args, env=ENV,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await proc.communicate()
    return proc.returncode or 0, out.decode(), err.decode()


async def test_query_cli_host_port_read_only_401_and_truncation(server, store):
    hostport = f"127.0.0.1:{server.port}"
    rc, _, err = await run_query("--server", hostport, "--token", "tok", "INSERT INTO otel.x VALUES (1)")
    assert rc == 1 and "only read-only statements are allowed" in err and "parseQueryToJSON" not in err
    rc, out, err = await run_query("--server", hostport, "--token", "tok", "--format", "json", "SHOW TABLES")
    assert rc == 0, err
    assert "otel_logs" in {r["name"] for r in json.loads(out)} or "truncated" in err
    rc, out, err = await run_query("--server", hostport, "--token", "tok", "--format", "json",
                                   f"DESCRIBE `{store.database}`.otel_logs")
    assert rc == 0 and len(json.loads(out)) == 3
    assert "note: truncated to the first 3 rows (server.query.max_rows)" in err  # said for JSON too
    rc, _, err = await run_query("--server", hostport, "SELECT 1")
    assert rc == 1 and "HTTP 401: missing or invalid bearer token" in err and "--token" in err
    rc, out, _ = await run_query("--server", hostport, "--token", "tok", "EXISTS TABLE otel_logs")
    assert rc == 0 and out.split() == ["result", "------", "1"]
