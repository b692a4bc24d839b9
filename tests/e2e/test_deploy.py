"""deploy/: the systemd units verify and start what the shipped configs describe, the Dockerfile's stages
run their commands against the built wheel, and every Kubernetes manifest validates offline against the
Kubernetes schemas with the infersight configs it embeds passing `infersight config check`.

The wheel tests share test_dist.py's session venv (about 30 s when this file runs alone); the rest is < 5 s.
"""
from __future__ import annotations

import copy
import re
import shlex
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from infersight.cli.main import build_parser, main
from infersight.collectors.nvml import NvmlConfig
from infersight.config import Config, load_config, parse_config
from support.dist import ROOT, call, clean_env, installed_venv, wait_ready
from support.net import free_port

pytestmark = pytest.mark.e2e
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "kubernetes"
K8S_VERSION = "1.31"  # the oldest Kubernetes minor still in upstream support when these were written
AGENT_YAML, SERVER_YAML = "/etc/infersight/agent.yaml", "/etc/infersight/server.yaml"
# What each path of a unit's ExecStart is on an installed host: the shipped files an operator copies there.
UNIT_CONFIGS = {
    "infersight-agent.service": [ROOT / "examples/gpu-node.yaml", ROOT / "examples/trainium-node.yaml"],
    "infersight-server.service": [DEPLOY / "systemd/server.yaml"],
}


def unit(path: Path) -> dict[str, list[str]]:
    """`Key=value` lines of a unit file, every value of a repeated key in order."""
    out: dict[str, list[str]] = {}
    for line in path.read_text().splitlines():
        if line and not line.startswith(("#", ";", "[")):
            key, _, value = line.partition("=")
            out.setdefault(key.strip(), []).append(value.strip())
    return out


def on_host(text: str, host: Path) -> str:
    """`text` (a config) with the token files and SLO folders it names created under `host`, standing in for the
    installed host's `/` laid out as docs/deploy.md says."""
    tokens = re.findall(r"token_file:\s*([^\s,}]+)", text)
    folders = [p.strip() for group in re.findall(r"paths:\s*\[([^\]]*)\]", text) for p in group.split(",") if p.strip()]
    for name in tokens + folders:
        local = host / name.lstrip("/")
        if name in tokens:
            local.parent.mkdir(parents=True, exist_ok=True)
            local.write_text("0" * 64 + "\n")
        else:
            local.mkdir(parents=True, exist_ok=True)
        text = text.replace(name, str(local))
    return text


def check_config(path: Path, capsys: pytest.CaptureFixture[str], host: Path) -> None:
    """`infersight config check FILE` exits 0 on such a host."""
    copy = host / f"check-{path.name}"
    copy.parent.mkdir(parents=True, exist_ok=True)
    copy.write_text(on_host(path.read_text(), host))
    assert main(["config", "check", str(copy)]) == 0, capsys.readouterr().err
    capsys.readouterr()


# --- systemd ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(UNIT_CONFIGS))
def test_unit_is_hardened(name):
    u = unit(DEPLOY / "systemd" / name)
    assert u["User"] == ["infersight"] and u["Restart"] == ["on-failure"]
    for key, value in {"NoNewPrivileges": "yes", "ProtectSystem": "strict", "ProtectHome": "yes",
                       "PrivateTmp": "yes", "CapabilityBoundingSet": ""}.items():
        assert u[key] == [value], key
    assert "ReadWritePaths" not in u  # the StateDirectory is the only writable path
    assert len(u["StateDirectory"]) == 1


def test_agent_unit_devices_and_secrets():
    u = unit(DEPLOY / "systemd/infersight-agent.service")
    assert u["DevicePolicy"] == ["closed"]
    assert u["DeviceAllow"] == ["char-nvidia* rw", "char-neuron* rw"]
    assert "PrivateDevices" not in u  # it would hide /dev/nvidia* and /dev/neuron*
    assert u["EnvironmentFile"] == ["-/etc/infersight/agent.env"]
    env = (DEPLOY / "systemd/agent.env.example").read_text()
    assert re.search(r"^OTEL_EXPORTER_OTLP_HEADERS=Authorization=Bearer%20\S+$", env, re.M)


def test_server_unit_reloads_on_sighup():
    u = unit(DEPLOY / "systemd/infersight-server.service")
    assert u["ExecReload"] == ["/bin/kill -HUP $MAINPID"]
    assert u["PrivateDevices"] == ["yes"]


@pytest.mark.parametrize("name", sorted(UNIT_CONFIGS))
def test_execstart_parses_with_the_shipped_configs(name, capsys, tmp_path):
    u = unit(DEPLOY / "systemd" / name)
    (argv,) = [shlex.split(line) for line in u["ExecStart"]]
    assert argv[0] == "/opt/infersight/bin/infersight"
    state = Path("/var/lib") / u["StateDirectory"][0]
    for shipped in UNIT_CONFIGS[name]:
        args = build_parser().parse_args([str(shipped) if a in (AGENT_YAML, SERVER_YAML) else a for a in argv[1:]])
        check_config(Path(args.config), capsys, tmp_path)
        cfg = load_config(args.config, env={})
        if args.command == "agent":
            assert cfg.agent.exporter.spool_dir == state, shipped
        else:
            assert args.data_dir == cfg.server.data_dir == state, shipped


def test_systemd_analyze_verify(tmp_path):
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze not installed (Debian package systemd; .ci/run installs it)")
    exe = Path(sys.executable).parent / "infersight"  # verify wants ExecStart's binary to exist
    for name in UNIT_CONFIGS:
        text = (DEPLOY / "systemd" / name).read_text().replace("/opt/infersight/bin/infersight", str(exe))
        (tmp_path / name).write_text(text)
    out = subprocess.run([analyze, "verify", *(str(tmp_path / n) for n in UNIT_CONFIGS)],
                         capture_output=True, text=True, timeout=60)
    ours = [line for line in (out.stdout + out.stderr).splitlines() if "infersight" in line]
    assert out.returncode == 0 and not ours, out.stdout + out.stderr


# --- container -------------------------------------------------------------------------------------------

def stages(dockerfile: Path) -> dict[str, list[tuple[str, str]]]:
    """Stage name -> its (INSTRUCTION, arguments) in order, continuation lines joined."""
    text = re.sub(r"\\\n", " ", dockerfile.read_text())
    out: dict[str, list[tuple[str, str]]] = {}
    current: list[tuple[str, str]] = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        instr, _, rest = line.partition(" ")
        if instr.upper() == "FROM":
            m = re.fullmatch(r"(\S+) AS (\S+)", rest.strip(), re.I)
            assert m, f"unnamed stage: {line}"
            current = out.setdefault(m[2], [("FROM", m[1])])
        elif current:
            current.append((instr.upper(), rest.strip()))
    return out


def instruction(stage: list[tuple[str, str]], name: str) -> list[str]:
    return [rest for instr, rest in stage if instr == name]


DOCKERFILE = DEPLOY / "container/Dockerfile"
# The config a final stage's CMD reads: the Kubernetes ConfigMap that is mounted there.
IMAGE_CONFIGS = {"agent": "agent-configmap.yaml", "server": "server-configmap.yaml"}


def test_dockerfile_stages_are_non_root_and_carry_no_build_tools():
    s = stages(DOCKERFILE)
    assert list(s) == ["builder", "runtime", "agent", "server"]
    assert instruction(s["runtime"], "ENTRYPOINT") == ['["infersight"]']
    for final in ("runtime", "agent", "server"):
        runs = " ".join(instruction(s[final], "RUN"))
        assert "build" not in runs.replace("--mount=type=bind,from=builder", "") and "apt-get" not in runs
        assert not instruction(s[final], "COPY"), "final stages take only the wheel, through a bind mount"
    for final, extra in (("agent", "${EXTRAS}"), ("server", "[server]")):
        (user,) = instruction(s[final], "USER")
        assert user.split(":")[0] not in ("0", "root")
        assert instruction(s[final], "FROM") == ["runtime"]
        assert extra in " ".join(instruction(s[final], "RUN"))
        assert "from=builder,source=/dist" in " ".join(instruction(s[final], "RUN"))
    assert instruction(s["agent"], "ARG") == ["EXTRAS=nvidia"]


def test_agent_image_sets_the_malloc_arenas_of_the_unit():
    """The image's agent stage (so the DaemonSet) has the systemd unit's MALLOC_ARENA_MAX, whose effect
    bench/agent_overhead.py measures with the unit's Environment= lines."""
    unit_env = dict(e.split("=", 1) for e in unit(DEPLOY / "systemd/infersight-agent.service")["Environment"])
    image_env = dict(e.split("=", 1) for e in instruction(stages(DOCKERFILE)["agent"], "ENV"))
    assert unit_env["MALLOC_ARENA_MAX"] == image_env["MALLOC_ARENA_MAX"] == "2"


def k8s_config(kind: str) -> str:
    (doc,) = [d for d in docs(K8S / IMAGE_CONFIGS[kind]) if d["metadata"]["name"] == f"infersight-{kind}"]
    return doc["data"][f"{kind}.yaml"]


@pytest.fixture(scope="module")
def venv(tmp_path_factory) -> Path:
    return installed_venv(tmp_path_factory)


def test_image_commands_run_against_the_wheel(venv, tmp_path):
    """Each stage's ENTRYPOINT + CMD parses in the installed wheel; the server's runs with the shipped config."""
    s = stages(DOCKERFILE)
    entry = yaml.safe_load(instruction(s["runtime"], "ENTRYPOINT")[0])
    py = str(venv / "bin" / "python")
    parse = "import sys; from infersight.cli.main import build_parser; build_parser().parse_args(sys.argv[1:])"
    for final in ("agent", "server"):
        cmd = entry + yaml.safe_load(instruction(s[final], "CMD")[0])
        cfg = tmp_path / f"{final}.yaml"
        cfg.write_text(on_host(k8s_config(final), tmp_path / f"host-{final}"))
        argv = [str(cfg) if a.startswith("/etc/infersight/") else a for a in cmd[1:]]
        subprocess.run([py, "-c", parse, *argv], check=True, cwd=tmp_path, env=clean_env(), timeout=30)
        out = subprocess.run([str(venv / "bin" / cmd[0]), "config", "check", str(cfg)], capture_output=True,
                             text=True, cwd=tmp_path, env=clean_env(), timeout=30)
        assert out.returncode == 0, out.stderr
    run_server_with_shipped_tokens(venv, tmp_path, entry + yaml.safe_load(instruction(s["server"], "CMD")[0]))


def run_server_with_shipped_tokens(venv: Path, tmp_path: Path, cmd: list[str]) -> None:
    """The server CMD with the ConfigMap's config (its /etc paths moved under tmp_path): ingest-only agents."""
    tokens = {"agents": "a" * 32, "sre": "s" * 32}
    (tmp_path / "tokens").mkdir()
    for name, value in tokens.items():
        (tmp_path / "tokens" / f"{name}.token").write_text(value + "\n")
    (tmp_path / "slos").mkdir()
    text = k8s_config("server").replace("/etc/infersight/", f"{tmp_path}/")
    (tmp_path / "server.yaml").write_text(text)
    port = free_port()
    argv = [str(tmp_path / "server.yaml") if a.startswith("/etc/infersight/") else
            str(tmp_path / "data") if a == "/var/lib/infersight/data" else a for a in cmd[1:]]
    base = f"http://127.0.0.1:{port}"
    with open(tmp_path / "server.log", "wb") as log:
        proc = subprocess.Popen([str(venv / "bin" / cmd[0]), *argv, "--listen", f"127.0.0.1:{port}"],
                                cwd=tmp_path, env=clean_env(), stdout=log, stderr=subprocess.STDOUT)
        try:
            wait_ready(base, proc)
            assert call(base, "GET", "/api/v1/slos", token=tokens["sre"])[0] == 200
            assert call(base, "GET", "/api/v1/slos", token=tokens["agents"])[0] == 403
            assert call(base, "GET", "/api/v1/slos")[0] == 401
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(60)
    assert proc.returncode == 0, (tmp_path / "server.log").read_text()


# --- Kubernetes ------------------------------------------------------------------------------------------

def docs(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def manifests() -> dict[str, list[dict[str, Any]]]:
    return {p.name: docs(p) for p in sorted(K8S.glob("*.yaml")) if p.name != "kustomization.yaml"}


def by_kind(kind: str, name: str, objs: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    objs = objs if objs is not None else [d for ds in manifests().values() for d in ds]
    (doc,) = [d for d in objs if d["kind"] == kind and d["metadata"]["name"] == name]
    return doc


def validate(doc: dict[str, Any]) -> None:
    kv = pytest.importorskip("kubernetes_validate")
    kv.validate(doc, K8S_VERSION, strict=True)


@pytest.mark.parametrize("name", sorted(manifests()))
def test_manifest_validates_against_the_kubernetes_schema(name):
    for doc in manifests()[name]:
        validate(doc)
        assert doc["metadata"].get("namespace", "infersight") == "infersight"


def test_kustomization_lists_every_manifest():
    k = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    assert sorted(k["resources"]) == sorted(manifests())
    assert k["namespace"] == "infersight"


def json6902(doc: dict[str, Any], ops: list[dict[str, Any]]) -> dict[str, Any]:
    """The `add` and `replace` operations kustomize applies for a JSON 6902 patch (all the overlay uses)."""
    doc = copy.deepcopy(doc)
    for op in ops:
        *parents, last = [p.replace("~1", "/").replace("~0", "~") for p in op["path"].split("/")[1:]]
        node: Any = doc
        for p in parents:
            node = node[int(p)] if isinstance(node, list) else node[p]
        if isinstance(node, list):
            if op["op"] == "add":
                node.insert(len(node) if last == "-" else int(last), op["value"])
            else:
                node[int(last)] = op["value"]
        else:
            assert op["op"] == "add" or last in node, op["path"]
            node[last] = op["value"]
    return doc


def neuron_overlay() -> list[dict[str, Any]]:
    """The base with deploy/kubernetes/neuron's patches applied."""
    k = yaml.safe_load((K8S / "neuron/kustomization.yaml").read_text())
    assert k["resources"] == ["../"]
    objs = [d for ds in manifests().values() for d in ds]
    for patch in k["patches"]:
        target = by_kind(patch["target"]["kind"], patch["target"]["name"], objs)
        objs[objs.index(target)] = json6902(target, yaml.safe_load((K8S / "neuron" / patch["path"]).read_text()))
    return objs


def test_neuron_overlay_validates():
    objs = neuron_overlay()
    for doc in objs:
        validate(doc)
    agent = by_kind("DaemonSet", "infersight-agent", objs)["spec"]["template"]["spec"]["containers"][0]
    assert agent["securityContext"]["privileged"] is True and agent["securityContext"]["runAsNonRoot"] is True
    assert {"name": "neuron-tools", "mountPath": "/opt/aws/neuron", "readOnly": True} in agent["volumeMounts"]


@pytest.mark.parametrize("overlay", ["base", "neuron"])
def test_configmaps_pass_config_check(overlay, tmp_path, capsys):
    objs = neuron_overlay() if overlay == "neuron" else [d for ds in manifests().values() for d in ds]
    for cm in (d for d in objs if d["kind"] == "ConfigMap"):
        for key, text in (cm.get("data") or {}).items():
            path = tmp_path / f"{cm['metadata']['name']}-{key}"
            path.write_text(text)
            check_config(path, capsys, tmp_path)


def config_of(kind: str, objs: list[dict[str, Any]] | None = None) -> Config:
    return parse_config(yaml.safe_load(by_kind("ConfigMap", f"infersight-{kind}", objs)["data"][f"{kind}.yaml"]),
                        env={})


def token_files(cfg: Config) -> dict[str, Path]:
    """server.tokens' name -> token_file (every shipped token is a file)."""
    files = {t.name: t.token_file for t in cfg.server.tokens}
    assert None not in files.values()
    return {name: path for name, path in files.items() if path is not None}


def mounts(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {m["mountPath"]: m for m in container.get("volumeMounts", [])}


def test_agent_daemonset_matches_its_config():
    ds = by_kind("DaemonSet", "infersight-agent")["spec"]["template"]["spec"]
    (agent,) = ds["containers"]
    volumes = {v["name"]: v for v in ds["volumes"]}
    cfg = config_of("agent")
    assert ds["hostPID"] is True and ds["automountServiceAccountToken"] is False
    (nvml,) = [c for c in cfg.collectors if isinstance(c, NvmlConfig)]
    proc = mounts(agent)[str(nvml.proc_root)]
    assert proc["readOnly"] and volumes[proc["name"]]["hostPath"]["path"] == "/proc"
    spool = mounts(agent)[str(cfg.agent.exporter.spool_dir)]
    assert volumes[spool["name"]]["hostPath"]["path"] == str(cfg.agent.exporter.spool_dir)
    env = {e["name"]: e for e in agent["env"]}
    assert env["NODE_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "spec.nodeName"
    assert "k8s.node.name=$(NODE_NAME)" in env["OTEL_RESOURCE_ATTRIBUTES"]["value"]
    assert env["NVIDIA_VISIBLE_DEVICES"]["value"] == "all" and cfg.resource.detect_cloud
    assert agent["args"][:2] == ["agent", "--config"]
    assert mounts(agent)[str(Path(agent["args"][2]).parent)]["readOnly"]
    sc = agent["securityContext"]
    assert sc["runAsNonRoot"] and sc["readOnlyRootFilesystem"] and sc["capabilities"]["drop"] == ["ALL"]
    # The agent gets only the ingest-scoped token.
    key = env["INFERSIGHT_INGEST_TOKEN"]["valueFrom"]["secretKeyRef"]
    server = config_of("server")
    (name,) = [n for n, path in token_files(server).items() if path.name == key["key"]]
    (token,) = [t for t in server.server.tokens if t.name == name]
    assert token.scopes == ("ingest",)
    assert env["OTEL_EXPORTER_OTLP_HEADERS"]["value"] == "Authorization=Bearer%20$(INFERSIGHT_INGEST_TOKEN)"


def test_server_statefulset_matches_its_config():
    sts = by_kind("StatefulSet", "infersight-server")["spec"]
    pod = sts["template"]["spec"]
    (server,) = pod["containers"]
    cfg = config_of("server")
    args = build_parser().parse_args(server["args"])
    assert args.data_dir == cfg.server.data_dir
    assert mounts(server)[str(args.data_dir)]["name"] == sts["volumeClaimTemplates"][0]["metadata"]["name"]
    for path in token_files(cfg).values():
        assert str(path.parent) in mounts(server)
    for p in cfg.slo.paths:
        assert str(p) in mounts(server)
    assert server["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert server["livenessProbe"]["httpGet"]["path"] == "/healthz"
    port = int(cfg.server.listen.rsplit(":", 1)[1])
    assert server["ports"][0]["containerPort"] == port
    svc = by_kind("Service", "infersight-server")["spec"]
    assert svc["selector"] == sts["selector"]["matchLabels"] and svc["ports"][0]["port"] == port
    np = by_kind("NetworkPolicy", "infersight-server")["spec"]
    assert np["podSelector"]["matchLabels"] == sts["selector"]["matchLabels"]
    assert [p["port"] for rule in np["ingress"] for p in rule["ports"]] == [port]
    agent_cfg = config_of("agent")
    assert agent_cfg.agent.exporter.endpoint == f"http://{sts['serviceName']}.infersight.svc:{port}"


def test_shipped_secret_holds_no_token():
    secret = by_kind("Secret", "infersight-tokens")
    assert set(secret["stringData"]) == {p.name for p in token_files(config_of("server")).values()}
    assert all(v == "" for v in secret["stringData"].values())  # the server refuses to start on an empty token
