"""`infersight up`: the all-in-one server on the embedded store plus an agent for this node.

Both run as child processes (chDB allows one store per process, and a crash of one
should not take the other down). Cloud detection stays off: nothing leaves loopback.
"""
from __future__ import annotations

import argparse
import hashlib
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import yaml

from infersight.cli._common import fail, listen_url
from infersight.config import ConfigError, load_config
from infersight.gateway.auth import client_token

GENERATED = "# written by `infersight up` (sha256:{digest}); edit freely: an edited file is kept as it is\n"
READY_TIMEOUT_SECONDS = 120.0


def register(sub: argparse._SubParsersAction) -> None:
    """`up`."""
    p = sub.add_parser("up", help="run server (embedded store) + agent for this node")
    p.add_argument("--config", type=Path, help="server configuration (server.listen, data_dir, slo, cost, tokens)")
    p.add_argument("--data-dir", type=Path, help="data directory (default: server.data_dir, ./data)")
    p.add_argument("--listen", help="HOST:PORT (default: server.listen, 127.0.0.1:4318)")
    p.add_argument("--interval-seconds", type=float, default=10.0)
    p.add_argument("--slo", action="append", default=[], help="SLO spec file or folder")
    p.set_defaults(func=run)


def agent_config(data_dir: Path, listen: str, interval_seconds: float, token: str | None = None) -> dict:
    """The agent of this node, exporting to the server on `listen` (with an ingest `token` when it needs one)."""
    headers = {"headers": {"Authorization": f"Bearer {token}"}} if token else {}
    return {
        "resource": {"service_name": "infersight-agent", "detect_cloud": False},
        "agent": {"exporter": {"endpoint": listen_url(listen), "spool_dir": str(data_dir / "spool"),
                               "export_interval_seconds": interval_seconds, **headers}},
        "collectors": [{"type": "host", "interval_seconds": interval_seconds}],
    }


def write_generated(path: Path, body: str) -> bool:
    """Write `body` under a header holding its digest, unless the file there was edited since (then keep it).

    True when written; False when the user's version was kept.
    """
    if path.exists():
        head, _, rest = path.read_text().partition("\n")
        m = re.search(r"sha256:([0-9a-f]{64})", head)
        if not m or hashlib.sha256(rest.encode()).hexdigest() != m.group(1):
            return False
    path.write_text(GENERATED.format(digest=hashlib.sha256(body.encode()).hexdigest()) + body)
    path.chmod(0o600)  # it may hold the ingest token
    return True


def wait_ready(proc: subprocess.Popen, base: str, timeout_seconds: float = READY_TIMEOUT_SECONDS) -> str | None:
    """None once this server answers /readyz; else why not (it exited, or it did not get ready in time)."""
    deadline = time.monotonic() + timeout_seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return f"the server exited with {proc.returncode} before it was ready"
        try:
            with urllib.request.urlopen(f"{base}/readyz", timeout=2) as resp:
                if resp.status == 200:
                    return None
        except (OSError, ValueError):
            pass
        time.sleep(0.2)
    return f"the server was not ready at {base}/readyz within {timeout_seconds:.0f} s"


def run(args: argparse.Namespace) -> int:
    from infersight.server.access import check_port

    try:
        cfg = load_config(args.config)
        listen = args.listen or cfg.server.listen
        check_port(listen)  # before anything is written or started: "infersight is up" must mean this one
    except ConfigError as err:
        return fail(err, 2)
    data_dir: Path = (args.data_dir or cfg.server.data_dir).resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    cfg_path = data_dir / "agent.yaml"
    try:
        token = client_token(cfg.server, "ingest")
    except ConfigError as err:
        return fail(err, 2)
    if not write_generated(cfg_path, yaml.safe_dump(agent_config(data_dir, listen, args.interval_seconds, token))):
        print(f"note: keeping {cfg_path} as edited (delete it to have it written again)", file=sys.stderr)
    exe = [sys.executable, "-m", "infersight.cli"]
    server_cmd = exe + ["server", "--data-dir", str(data_dir), "--listen", listen]
    if args.config:
        server_cmd += ["--config", str(args.config)]
    for s in args.slo:
        server_cmd += ["--slo", s]
    base = listen_url(listen)
    procs = [subprocess.Popen(server_cmd)]
    problem = wait_ready(procs[0], base)
    if problem:
        if procs[0].poll() is None:
            procs[0].terminate()
            procs[0].wait(timeout=30)
        return fail(problem, 1)
    procs.append(subprocess.Popen(exe + ["agent", "--config", str(cfg_path)]))
    print(f"""
infersight is up (data in {data_dir})
  send OTLP/HTTP to   {base}/v1/metrics  {base}/v1/traces  {base}/v1/logs
  query API           curl -s {base}/api/v1/query -H 'Content-Type: application/json' \\
                        -d '{{"sql": "SELECT MetricName, count() FROM otel.otel_metrics_gauge GROUP BY 1"}}'
  web UI              {base}/
  agent config        {cfg_path}
stop with Ctrl-C (or SIGTERM)
""", flush=True)
    stopping = False

    def stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    rc = 0
    while not stopping:
        for role, p in zip(("server", "agent"), procs, strict=True):
            if p.poll() is not None:
                print(f"error: child {role} exited with {p.returncode}", file=sys.stderr)
                stopping, rc = True, 1
        time.sleep(0.5)
    # Agent first and waited for: its final export must reach the server before that stops.
    for p in reversed(procs):
        if p.poll() is None:
            p.terminate()
        try:
            p.wait(timeout=15)
        except subprocess.TimeoutExpired:
            p.kill()
    return rc
