"""config.py: unknown keys named with the file, OTEL_* overlay, `config check` masking, the examples."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from infersight.config import ConfigError, load_config, parse_config

EXAMPLES = Path(__file__).parent.parent / "examples"


def write(tmp_path: Path, data: dict | str, name: str = "agent.yaml") -> Path:
    p = tmp_path / name
    p.write_text(data if isinstance(data, str) else yaml.safe_dump(data))
    return p


@pytest.mark.parametrize(("data", "message"), [
    ({"resorce": {}}, "unknown key 'resorce'"),
    ({"agent": {"exporter": {"spool_bytes": 5}}}, "unknown key 'agent.exporter.spool_bytes'"),
    ({"resource": {"detect_clouds": True}}, "unknown key 'resource.detect_clouds'"),
    ({"agent": {"exporter": {"max_spool_bytes": "lots"}}}, "agent.exporter.max_spool_bytes: "),
    ({"collectors": [{"type": "host", "interval_seconds": 0}]}, "interval_seconds: Input should be greater than 0"),
    ({"collectors": [{"type": "gpu"}]}, "unknown collector type 'gpu'"),
    ({"collectors": [{"interval_seconds": 5}]}, "collectors.0: each collector entry needs a 'type'"),
    ({"collectors": [{"type": "host"}, {"type": "host", "proces_names": ["vllm"]}]},
     "unknown key 'collectors.1.proces_names'"),
])
def test_errors_name_the_file_and_the_key(tmp_path, data, message):
    path = write(tmp_path, data)
    with pytest.raises(ConfigError) as err:
        load_config(path, env={})
    assert str(err.value).startswith(f"{path}: ")
    assert message in str(err.value)


def test_unreadable_and_non_mapping_files(tmp_path):
    with pytest.raises(ConfigError, match="absent.yaml: cannot read"):
        load_config(tmp_path / "absent.yaml", env={})
    with pytest.raises(ConfigError, match="invalid YAML"):
        load_config(write(tmp_path, "a: [1,"), env={})
    with pytest.raises(ConfigError, match="top level must be a mapping"):
        load_config(write(tmp_path, "- 1\n"), env={})


def test_models_are_frozen():
    cfg = parse_config({})
    with pytest.raises(Exception, match="frozen"):
        cfg.agent.exporter.endpoint = "http://elsewhere"


def test_otel_environment_overlays_the_file(tmp_path):
    path = write(tmp_path, {"resource": {"service_name": "from-file", "attributes": {"team": "a", "zone": "z1"}},
                            "agent": {"exporter": {"endpoint": "http://127.0.0.1:1", "headers": {"X-A": "1"}}}})
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318/",
           "OTEL_EXPORTER_OTLP_HEADERS": "Authorization=Bearer%20s3cr3t,X-Tenant=acme",
           "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
           "OTEL_RESOURCE_ATTRIBUTES": "team=b,cloud.provider=coreweave,cloud.region=us-east-04",
           "OTEL_SERVICE_NAME": "from-env"}
    cfg = load_config(path, env=env)
    ex = cfg.agent.exporter
    assert ex.endpoint == "http://127.0.0.1:4318" and ex.protocol == "grpc"
    assert {k: v.get_secret_value() for k, v in ex.headers.items()} == {
        "X-A": "1", "Authorization": "Bearer s3cr3t", "X-Tenant": "acme"}
    assert cfg.resource.service_name == "from-env"
    assert cfg.resource.attributes == {"team": "b", "zone": "z1", "cloud.provider": "coreweave",
                                       "cloud.region": "us-east-04"}


def test_signal_specific_endpoint_wins_and_loses_its_path(tmp_path):
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:1",
           "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT": "http://127.0.0.1:4318/v1/metrics"}
    assert load_config(None, env=env).agent.exporter.endpoint == "http://127.0.0.1:4318"


def test_bad_protocol_from_env_is_named(tmp_path):
    with pytest.raises(ConfigError, match="agent.exporter.protocol"):
        load_config(write(tmp_path, {}), env={"OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"})


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    return subprocess.run([sys.executable, "-m", "infersight.cli", *args], capture_output=True, text=True,
                          timeout=60, env={**clean, **(env or {})})


def test_config_check_prints_effective_config_with_secrets_masked(tmp_path):
    path = write(tmp_path, {
        "agent": {"exporter": {"headers": {"Authorization": "Bearer file-secret"}}},
        "server": {"auth_token": "server-secret",
                   "storage": {"backend": "clickhouse",
                               "clickhouse": {"url": "https://ch.internal:8443", "password": "ch-secret"}}}})
    out = run_cli("config", "check", str(path), env={"OTEL_EXPORTER_OTLP_HEADERS": "X-Api-Key=env-secret"})
    assert out.returncode == 0, out.stderr
    for secret in ("file-secret", "server-secret", "ch-secret", "env-secret"):
        assert secret not in out.stdout
    effective = yaml.safe_load(out.stdout)
    assert effective["agent"]["exporter"]["headers"] == {"Authorization": "**********", "X-Api-Key": "**********"}
    assert effective["server"]["auth_token"] == "**********"
    assert effective["server"]["storage"]["clickhouse"]["password"] == "**********"
    # Defaults are filled in: this is the configuration the agent would run with.
    assert effective["agent"]["exporter"]["max_spool_bytes"] == 256 * 1024 * 1024
    assert effective["resource"]["detect_cloud"] is False


def test_config_check_rejects_unknown_key_with_exit_2(tmp_path):
    path = write(tmp_path, {"agent": {"exporter": {"spool_dir": "/tmp/x", "max_spool_megabytes": 5}}})
    out = run_cli("config", "check", str(path))
    assert out.returncode == 2 and out.stdout == ""
    assert f"{path}: unknown key 'agent.exporter.max_spool_megabytes'" in out.stderr


def test_examples_are_valid_and_cloud_nodes_detect_the_cloud():
    gpu = load_config(EXAMPLES / "gpu-node.yaml", env={})
    trn = load_config(EXAMPLES / "trainium-node.yaml", env={})
    aio = load_config(EXAMPLES / "all-in-one.yaml", env={})
    assert gpu.resource.detect_cloud and trn.resource.detect_cloud
    assert not aio.resource.detect_cloud
    assert [c.type for c in gpu.collectors] == ["host", "nvml", "inference"]
    assert [c.type for c in trn.collectors] == ["host", "neuron", "inference"]
    assert [c.type for c in aio.collectors] == ["host"]
    assert aio.server.listen.startswith("127.0.0.1:")
    assert aio.agent.exporter.endpoint == f"http://{aio.server.listen}"
