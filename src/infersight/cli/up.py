"""`infersight up`: the all-in-one server on the embedded store plus an agent for this node.

Both run as child processes (chDB allows one store per process, and a crash of one
should not take the other down). Cloud detection stays off: nothing leaves loopback.
"""
from __future__ import annotations

import argparse
import signal
import subprocess
import sys
import time
from pathlib import Path

import yaml


def register(sub: argparse._SubParsersAction) -> None:
    """`up`."""
    p = sub.add_parser("up", help="run server (embedded store) + agent for this node")
    p.add_argument("--data-dir", default="./data", type=Path)
    p.add_argument("--listen", default="127.0.0.1:4318")
    p.add_argument("--interval-seconds", type=float, default=10.0)
    p.add_argument("--slo", action="append", default=[], help="SLO spec file or folder")
    p.set_defaults(func=run)


def agent_config(data_dir: Path, listen: str, interval_seconds: float) -> dict:
    return {
        "resource": {"service_name": "infersight-agent", "detect_cloud": False},
        "agent": {"exporter": {"endpoint": f"http://{listen}", "spool_dir": str(data_dir / "spool"),
                               "export_interval_seconds": interval_seconds}},
        "collectors": [{"type": "host", "interval_seconds": interval_seconds}],
    }


def run(args: argparse.Namespace) -> int:
    data_dir: Path = args.data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    cfg_path = data_dir / "agent.yaml"
    cfg_path.write_text(yaml.safe_dump(agent_config(data_dir, args.listen, args.interval_seconds)))
    exe = [sys.executable, "-m", "infersight.cli"]
    server_cmd = exe + ["server", "--data-dir", str(data_dir), "--listen", args.listen]
    for s in args.slo:
        server_cmd += ["--slo", s]
    procs = [subprocess.Popen(server_cmd)]
    time.sleep(1.0)
    procs.append(subprocess.Popen(exe + ["agent", "--config", str(cfg_path)]))
    base = f"http://{args.listen}"
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
        for p in procs:
            if p.poll() is not None:
                print(f"error: child {p.args[3]} exited with {p.returncode}", file=sys.stderr)
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
