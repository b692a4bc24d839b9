"""`make dist`'s artefacts work on their own: the wheel, installed into a fresh venv with its extras,
runs the agent and the server with no source tree on the path.

Slow (about 30 s on the 2-core VM, most of it pip unpacking chDB): marked e2e.
"""
from __future__ import annotations

import re
import signal
import subprocess
import tarfile
import time
import zipfile
from pathlib import Path

import pytest
import yaml

from support.dist import ROOT, build_dist, call, clean_env, installed_venv, wait_ready
from support.net import free_port

pytestmark = pytest.mark.e2e
VERSION = re.findall(r'^__version__ = "(.+)"$', (ROOT / "src/infersight/__init__.py").read_text(), re.M)[0]


@pytest.fixture(scope="module")
def dist(tmp_path_factory) -> Path:
    return build_dist(tmp_path_factory)


@pytest.fixture(scope="module")
def venv(tmp_path_factory) -> Path:
    return installed_venv(tmp_path_factory)


def test_dist_has_an_sdist_and_a_wheel_with_the_package_data(dist):
    (sdist,) = dist.glob(f"infersight-{VERSION}.tar.gz")
    (wheel,) = dist.glob(f"infersight-{VERSION}-py3-none-any.whl")
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        meta = z.read(f"infersight-{VERSION}.dist-info/METADATA").decode()
        entry_points = z.read(f"infersight-{VERSION}.dist-info/entry_points.txt").decode()
    for data in ("infersight/storage/sql/otel_schema.sql", "infersight/webui/static/index.html",
                 "infersight/slo/windows/google-30d.yaml"):
        assert data in names
    assert not any(n.startswith(("tests/", "bench/")) for n in names)
    assert "Provides-Extra: nvidia" in meta and "Provides-Extra: server" in meta
    assert "infersight = infersight.cli.main:main" in entry_points
    with tarfile.open(sdist) as t:
        assert f"infersight-{VERSION}/pyproject.toml" in t.getnames()


def test_installed_wheel_is_imported_from_the_venv(venv, tmp_path):
    out = subprocess.run([str(venv / "bin" / "python"), "-c", "import infersight, sys; print(infersight.__file__); "
                          "print(any(p.startswith(sys.argv[1]) for p in sys.path))", str(ROOT)],
                         capture_output=True, text=True, check=True, cwd=tmp_path, env=clean_env())
    path, source_on_path = out.stdout.split()
    assert Path(path).is_relative_to(venv) and source_on_path == "False"


def test_version(venv, tmp_path):
    out = subprocess.run([str(venv / "bin" / "infersight"), "--version"], capture_output=True, text=True,
                         cwd=tmp_path, env=clean_env(), timeout=30)
    assert out.returncode == 0, out.stderr
    assert VERSION in out.stdout


def test_server_and_agent_from_the_wheel(venv, tmp_path):
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    cfg = tmp_path / "infersight.yaml"
    cfg.write_text(yaml.safe_dump({
        "resource": {"service_name": "dist-test"},
        "agent": {"exporter": {"endpoint": base, "spool_dir": str(tmp_path / "spool"),
                               "export_interval_seconds": 0.5, "retry_interval_seconds": 0.5}},
        "collectors": [{"type": "host", "interval_seconds": 0.5}],
    }))
    bin_ = venv / "bin" / "infersight"
    with open(tmp_path / "server.log", "wb") as server_log, open(tmp_path / "agent.log", "wb") as agent_log:
        server = subprocess.Popen([str(bin_), "server", "--data-dir", str(tmp_path / "data"), "--listen",
                                   f"127.0.0.1:{port}"], cwd=tmp_path, env=clean_env(), stdout=server_log,
                                  stderr=subprocess.STDOUT)
        agent = subprocess.Popen([str(bin_), "agent", "--config", str(cfg)], cwd=tmp_path, env=clean_env(),
                                 stdout=agent_log, stderr=subprocess.STDOUT)
        try:
            agent_sends(base, server, tmp_path)
            agent.send_signal(signal.SIGTERM)
            assert agent.wait(30) == 0, (tmp_path / "agent.log").read_text()
        finally:
            for proc in (agent, server):
                if proc.poll() is None:
                    proc.send_signal(signal.SIGTERM)
                    proc.wait(60)
    assert server.returncode == 0, (tmp_path / "server.log").read_text()


def agent_sends(base: str, server: subprocess.Popen, tmp_path: Path) -> None:
    """Until the server is ready and holds the agent's host metrics (it spools until then)."""
    wait_ready(base, server)
    sql = "SELECT count() AS n FROM otel.otel_metrics_gauge WHERE ServiceName = 'dist-test'"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        status, body = call(base, "POST", "/api/v1/query", {"sql": sql})
        if status == 200 and isinstance(body, dict) and body["rows"][0]["n"] > 0:
            return
        time.sleep(0.5)
    raise AssertionError(f"no agent rows: {status} {body}\n{(tmp_path / 'agent.log').read_text()}")
