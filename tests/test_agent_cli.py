"""`infersight agent` as a subprocess: cloud identity from a local metadata server onto every batch."""
from __future__ import annotations

import asyncio
import subprocess
import sys
import threading

import yaml
from aiohttp import web

from infersight.config import ExporterConfig
from infersight.exporters.senders import GrpcSender, HttpSender, make_sender
from support.agent_proc import AgentProc, wait_for
from support.net import free_port
from support.otlp_recorder import Recorder
from test_cloud import aws_app


class ThreadedApp:
    """An aiohttp app on its own loop/thread, for subprocesses to talk to."""

    def __init__(self, app: web.Application, port: int) -> None:
        self.loop = asyncio.new_event_loop()
        self.runner = web.AppRunner(app)
        ready = threading.Event()

        def run() -> None:
            self.loop.run_until_complete(self.runner.setup())
            self.loop.run_until_complete(web.TCPSite(self.runner, "127.0.0.1", port).start())
            ready.set()
            self.loop.run_forever()
            self.loop.run_until_complete(self.runner.cleanup())

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()
        assert ready.wait(10)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


def agent_config(tmp_path, endpoint: str, metadata_url: str):
    path = tmp_path / "agent.yaml"
    path.write_text(yaml.safe_dump({
        "resource": {"service_name": "node-agent", "detect_cloud": True, "cloud_metadata_base_url": metadata_url,
                     "cloud_metadata_timeout_seconds": 0.5},
        "agent": {"exporter": {"endpoint": endpoint, "spool_dir": str(tmp_path / "spool"),
                               "export_interval_seconds": 0.3}, "self_metrics_interval_seconds": 0.3},
        "collectors": [{"type": "host", "interval_seconds": 0.2}]}))
    return path


def resource_of(received) -> dict[str, str]:
    return {kv.key: kv.value.string_value for kv in received.request.resource_metrics[0].resource.attributes}


def test_agent_puts_detected_cloud_identity_on_every_batch(tmp_path, port):
    metadata = ThreadedApp(aws_app(), free_port())
    recorder = Recorder(port).start()
    agent = AgentProc(agent_config(tmp_path, recorder.url, f"http://127.0.0.1:{metadata.runner.addresses[0][1]}"),
                      tmp_path / "agent.log")
    try:
        wait_for(lambda: len(recorder.accepted()) >= 2, 20, "exports")
    finally:
        rc = agent.terminate()
        recorder.stop()
        metadata.stop()
    assert rc == 0
    for r in recorder.accepted():
        attrs = resource_of(r)
        assert attrs["service.name"] == "node-agent"
        assert (attrs["cloud.provider"], attrs["cloud.region"], attrs["cloud.availability_zone"]) == (
            "aws", "us-east-2", "us-east-2b")
        assert (attrs["host.id"], attrs["host.type"]) == ("i-0a1b2c3d4e5f67890", "p5.48xlarge")


def test_agent_without_metadata_service_logs_once_and_runs(tmp_path, port):
    recorder = Recorder(port).start()
    agent = AgentProc(agent_config(tmp_path, recorder.url, f"http://127.0.0.1:{free_port()}"), tmp_path / "agent.log")
    try:
        wait_for(lambda: len(recorder.accepted()) >= 3, 20, "exports")
    finally:
        rc = agent.terminate()
        recorder.stop()
    assert rc == 0
    assert agent.log().count("cloud detection failed") == 1
    assert all("cloud.provider" not in resource_of(r) for r in recorder.accepted())


def test_protocol_selects_the_sender():
    assert isinstance(make_sender(ExporterConfig(protocol="grpc", endpoint="http://127.0.0.1:4317")), GrpcSender)
    http = make_sender(ExporterConfig(endpoint="http://127.0.0.1:4318/"))
    assert isinstance(http, HttpSender) and http.url == "http://127.0.0.1:4318/v1/metrics"


def test_agent_side_runs_without_the_server_extra(tmp_path):
    """The base install is the agent: no chDB, ClickHouse client or pyarrow needed."""
    cfg = tmp_path / "node.yaml"
    cfg.write_text("collectors:\n  - {type: host}\n")
    code = ("import sys\n"
            "for m in ('pyarrow', 'chdb', 'clickhouse_connect'): sys.modules[m] = None\n"
            "from infersight.cli.main import main\n"
            f"sys.exit(main(['collect', '--config', {str(cfg)!r}, '--format', 'json']))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert '"system.memory.usage"' in out.stdout
