"""`infersight doctor`: the NVML replay double injected, Neuron devices in a temporary /dev, recorded inference
expositions and a real gateway served on loopback, and the CLI end to end (exit code, --format json)."""
from __future__ import annotations

import asyncio
import json
import threading
from pathlib import Path

import pytest
import yaml
from aiohttp import web
from aiohttp.test_utils import TestServer

from infersight.cli.doctor import Doctor, Http, http_request
from infersight.cli.main import main
from infersight.config import ServerConfig, TokenConfig, parse_config
from infersight.gateway.app import create_app
from infersight.testing.nvml_replay import ReplayNvml, load_capture
from support.paths import FIXTURES

TOKEN = "doctor-token"


def _cfg(tmp_path: Path, **data) -> object:
    data.setdefault("agent", {"exporter": {"endpoint": "http://127.0.0.1:9", "spool_dir": str(tmp_path / "spool")}})
    return parse_config(data)


def _by_name(checks) -> dict:
    return {c.name: c for c in checks}


def test_nvml_gpus_and_gpm_from_the_replay(tmp_path):
    cfg = _cfg(tmp_path, collectors=[{"type": "nvml"}])
    replay = ReplayNvml(load_capture(), gpus=2)
    check = Doctor(cfg, nvml=replay).check_nvml()
    assert check.status == "ok"
    assert [g["name"] for g in check.data["gpus"]] == ["NVIDIA H200", "NVIDIA H200"]
    assert all(g["gpm"] for g in check.data["gpus"]) and "GPM supported" in check.detail
    assert check.data["driver"] == "580.159.04"
    replay.fail_init(9)  # NVML_ERROR_DRIVER_NOT_LOADED
    broken = Doctor(cfg, nvml=replay).check_nvml()
    assert broken.status == "fail" and "NVML unavailable" in broken.detail


def test_nvml_absent_is_skipped_unless_configured(tmp_path):
    assert Doctor(_cfg(tmp_path), load_nvml=lambda: None).check_nvml().status == "skip"
    wanted = Doctor(_cfg(tmp_path, collectors=[{"type": "nvml"}]), load_nvml=lambda: None).check_nvml()
    assert wanted.status == "fail" and "infersight[nvidia]" in wanted.detail


def test_neuron_devices_and_monitor(tmp_path):
    dev = tmp_path / "dev"
    dev.mkdir()
    cfg = _cfg(tmp_path, collectors=[{"type": "neuron"}])
    assert Doctor(cfg, dev_dir=dev).check_neuron().status == "fail"  # configured, no devices
    for name in ("neuron0", "neuron1", "nvidia0"):
        (dev / name).touch()
    missing = Doctor(cfg, dev_dir=dev, which=lambda _: None).check_neuron()
    assert missing.status == "fail" and "neuron-monitor is not on PATH" in missing.detail
    ok = Doctor(cfg, dev_dir=dev, which=lambda name: f"/opt/aws/neuron/bin/{name}").check_neuron()
    assert ok.status == "ok" and ok.data["devices"] == ["neuron0", "neuron1"]
    assert Doctor(_cfg(tmp_path), dev_dir=tmp_path / "none").check_neuron() is None  # not here, not wanted


@pytest.fixture
def inference_servers():
    """TGI and vLLM expositions (recorded fixtures) and their /info, /version, on loopback."""
    tgi = (FIXTURES / "tgi" / "tgi_metrics.txt").read_text()
    vllm = (FIXTURES / "vllm" / "datadog_vllm_metrics.txt").read_text()
    app = web.Application()
    app.router.add_get("/tgi/metrics", lambda r: web.Response(text=tgi))
    app.router.add_get("/tgi/info", lambda r: web.json_response({"model_id": "llama", "version": "3.3.4"}))
    app.router.add_get("/vllm/metrics", lambda r: web.Response(text=vllm))
    app.router.add_get("/vllm/version", lambda r: web.json_response({"version": "0.11.0"}))
    app.router.add_get("/json/metrics", lambda r: web.json_response({"not": "prometheus"}))
    loop = asyncio.new_event_loop()
    server = TestServer(app, host="127.0.0.1")
    loop.run_until_complete(server.start_server())
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.port}"
    asyncio.run_coroutine_threadsafe(server.close(), loop).result(10)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(10)


def test_inference_endpoints_kind_version_and_slis(tmp_path, inference_servers):
    base = inference_servers
    endpoints = [{"url": f"{base}/tgi/metrics"}, {"url": f"{base}/vllm/metrics"},
                 {"url": "http://127.0.0.1:9/metrics"}, {"url": f"{base}/json/metrics"}]
    cfg = _cfg(tmp_path, collectors=[{"type": "inference", "endpoints": endpoints}])
    checks = list(Doctor(cfg, timeout_seconds=2).check_inference())
    tgi, vllm, down, notprom = checks
    assert tgi.status == "ok" and tgi.data["kind"] == "tgi" and tgi.data["version"] == "3.3.4"
    assert "latency ttft" not in tgi.data["slis"]
    assert "no latency ttft: tgi exposes no time-to-first-token histogram" in tgi.data["missing"]
    assert {"availability", "latency e2e", "latency tpot", "cost / tokens"} <= set(tgi.data["slis"])
    assert vllm.status == "ok" and vllm.data["kind"] == "vllm" and "latency ttft" in vllm.data["slis"]
    assert vllm.data["version"] == "0.11.0"
    assert down.status == "fail" and "unreachable" in down.detail
    assert notprom.status == "fail"


def test_spool_writable_or_not(tmp_path):
    assert Doctor(_cfg(tmp_path)).check_spool().status == "ok"
    blocker = tmp_path / "file"
    blocker.write_text("x")
    bad = _cfg(tmp_path, agent={"exporter": {"spool_dir": str(blocker / "spool")}})
    check = Doctor(bad).check_spool()
    assert check.status == "fail" and "agent.exporter.spool_dir" in check.detail


def test_cloud_only_when_opted_in(tmp_path):
    check = Doctor(_cfg(tmp_path)).check_cloud()
    assert check.status == "skip" and "detect_cloud" in check.detail


@pytest.fixture
def gateway(store):
    cfg = ServerConfig(tokens=(TokenConfig(name="agent", scopes=("ingest",), token=TOKEN),))
    loop = asyncio.new_event_loop()
    server = TestServer(create_app(cfg, store), host="127.0.0.1")
    loop.run_until_complete(server.start_server())
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.port}"
    asyncio.run_coroutine_threadsafe(server.close(), loop).result(10)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(10)


def _server_cfg(tmp_path, url: str, token: str | None):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return _cfg(tmp_path, agent={"exporter": {"endpoint": url, "headers": headers,
                                              "spool_dir": str(tmp_path / "spool")}})


def test_server_token_and_clock_skew(tmp_path, gateway):
    server, clock = _by_name(Doctor(_server_cfg(tmp_path, gateway, TOKEN)).check_server()).values()
    assert server.status == "ok" and "token" in server.detail
    assert clock.status == "ok" and abs(clock.data["skew_seconds"]) < 2
    refused, _ = Doctor(_server_cfg(tmp_path, gateway, "wrong")).check_server()
    assert refused.status == "fail" and "token refused (HTTP 401)" in refused.detail
    import time

    ahead = Doctor(_server_cfg(tmp_path, gateway, TOKEN), clock=lambda: time.time() + 60)
    _, skewed = ahead.check_server()
    assert skewed.status == "fail" and skewed.data["skew_seconds"] == pytest.approx(-60, abs=1.5)


def test_server_unreachable(tmp_path):
    (check,) = Doctor(_server_cfg(tmp_path, "http://127.0.0.1:9", TOKEN), timeout_seconds=1).check_server()
    assert check.status == "fail" and "unreachable" in check.detail


def test_cli_exit_codes_and_json(tmp_path, gateway, inference_servers, capsys):
    good = {"agent": {"exporter": {"endpoint": gateway, "headers": {"Authorization": f"Bearer {TOKEN}"},
                                   "spool_dir": str(tmp_path / "spool")}},
            "collectors": [{"type": "inference", "endpoints": [{"url": f"{inference_servers}/vllm/metrics"}]}]}
    path = tmp_path / "agent.yaml"
    path.write_text(yaml.safe_dump(good))
    assert main(["doctor", "--config", str(path), "--format", "json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] is True
    names = [c["name"] for c in report["checks"]]
    assert names[0] == "nvml" and "server" in names and "clock" in names and "spool" in names
    good["agent"]["exporter"]["headers"] = {"Authorization": "Bearer wrong"}
    path.write_text(yaml.safe_dump(good))
    assert main(["doctor", "--config", str(path)]) == 1
    assert "[FAIL] server:" in capsys.readouterr().out
    path.write_text("agent: {nope: 1}")
    assert main(["doctor", "--config", str(path)]) == 1
    assert "agent.nope" in capsys.readouterr().err


def test_http_request_returns_http_errors_as_answers(gateway):
    answer = http_request(f"{gateway}/api/v1/query", 2)
    assert isinstance(answer, Http) and answer.status in (401, 405)
