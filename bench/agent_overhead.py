"""What the running agent costs a node: peak RSS and CPU of `infersight agent --config FILE`, next to node_exporter.

Every process is started as its user starts it, all in one run and side by side for the same window:
- `infersight agent --config FILE` (the venv's console script) with the host collector at 1 s and export every 1 s,
  posting OTLP/HTTP to a tiny local sink (a separate process that decodes each request and answers 200);
- node_exporter (`prometheus-node-exporter`, the Debian package, default collectors), scraped every 1 s by this
  script so that it does its work as often as the agent does;
- with `--scenario gpu` (or `all`), the agent again with the NVML replay of 8 H200s (infersight.testing.nvml_replay,
  put in place of `pynvml` by a shim on PYTHONPATH: the hardware is the one thing faked) and one vLLM endpoint (a
  local HTTP server serving the vLLM fixture), both at 1 s;
- with `--baseline-ref REF`, the same agents from git REF's `src/` (exported to a temp dir and put first on
  PYTHONPATH), so each change is measured against what it replaced in the same run;
- the same agents again with the environment the systemd unit sets (`UNIT_ENV`: MALLOC_ARENA_MAX=2); the target
  is checked on the plain run;
- floors: a bare interpreter, one that has imported only psutil (what any Python agent must at least carry), then
  + one pydantic model, then + yaml, argparse, logging and http.client (the libraries the agent runs on, none of its
  own code).

Figures per process: peak RSS (`VmHWM` of /proc/<pid>/status at the end) and CPU (utime + stime of /proc/<pid>/stat
over the window after a warm-up) as a share of one core. The sink's count of points per agent shows each agent did
its work. Targets (issue 15): host collection at 1 s, export 1 s: <= 35 MB peak RSS, <= 0.3 % of a core.

    .venv/bin/python bench/agent_overhead.py [--seconds 60] [--scenario host|gpu|all] [--baseline-ref HEAD~3]
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VLLM_FIXTURE = ROOT / "tests/fixtures/vllm/datadog_vllm_metrics.txt"
NODE_EXPORTER = "prometheus-node-exporter"
TICK = os.sysconf("SC_CLK_TCK")
RSS_TARGET_KB, CPU_TARGET = 35 * 1024, 0.3
# The Environment= lines of the agent's systemd unit (MALLOC_ARENA_MAX=2: at most 2 glibc malloc arenas, not one
# per thread that allocates), read from the unit so what is measured is what ships.
UNIT_ENV = dict(line.split("=", 2)[1:] for line in (ROOT / "deploy/systemd/infersight-agent.service")
                .read_text().splitlines() if line.startswith("Environment="))

# The OTLP sink: decodes every request (so a malformed batch would show) and counts points per service.name.
SINK = r"""
import json, signal, sys, threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
counts, lock = {}, threading.Lock()
class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        req = ExportMetricsServiceRequest.FromString(body)
        for rm in req.resource_metrics:
            svc = next((a.value.string_value for a in rm.resource.attributes if a.key == "service.name"), "?")
            n = sum(len(getattr(m, m.WhichOneof("data")).data_points) for sm in rm.scope_metrics for m in sm.metrics)
            with lock:
                counts[svc] = counts.get(svc, 0) + n
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()
    def log_message(self, *a):
        pass
srv = ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H)
def stop(*_):
    threading.Thread(target=srv.shutdown).start()
signal.signal(signal.SIGTERM, stop)
print("ready", flush=True)
srv.serve_forever()
print(json.dumps(counts), flush=True)
"""

# Stands in for nvidia-ml-py's `pynvml`: the packaged H200 capture as 8 GPUs, stepping one sample a second through
# the matmul and memcopy phases (the replay is pure Python, so its own cost counts in the agent's figures).
PYNVML_SHIM = r"""
import sys, threading, time
from infersight.testing.nvml_replay import ReplayNvml, load_capture
_replay = ReplayNvml(load_capture(), gpus=8)
_steps = _replay.steps("matmul_bf16") + _replay.steps("memcopy")
def _step():
    i = 0
    while True:
        _replay.seek(_steps[i % len(_steps)])
        i += 1
        time.sleep(1.0)
threading.Thread(target=_step, daemon=True, name="nvml-replay").start()
sys.modules[__name__] = _replay
"""


# What the agent's third-party and standard-library imports cost before any of its own code: pydantic with one
# model built (its schema machinery, and importlib.metadata with zipfile, csv and email for its plugin scan), then
# the config reader, the CLI parser, logging and the HTTP client (which imports ssl whether or not TLS is used).
# The agent's loop is threads: no asyncio, no concurrent.futures.
FLOOR_PYDANTIC = """
import psutil, threading, time, pydantic
class M(pydantic.BaseModel):
    x: int = 1
M(); psutil.cpu_times(); time.sleep(1e6)
"""
FLOOR_LIBS = FLOOR_PYDANTIC.replace("import psutil,", "import argparse, http.client, logging, queue, yaml, psutil,")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout} s")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # utime, stime (fields 14 and 15 of stat)


def status_kb(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise KeyError(key)


@dataclass
class Measured:
    name: str
    proc: subprocess.Popen
    log: Path | None = None
    service: str | None = None  # the agent's service.name, for the sink's count
    cpu0: float = 0.0
    cpu: float = 0.0
    hwm_kb: int = 0
    rss_kb: int = 0
    extra: dict = field(default_factory=dict)


def export_ref(ref: str, into: Path) -> Path:
    """`src/` of git `ref`, unpacked under `into`."""
    data = subprocess.run(["git", "-C", str(ROOT), "archive", "--format=tar", ref, "src"], check=True,
                          capture_output=True).stdout
    into.mkdir(parents=True, exist_ok=True)
    tar = into / "src.tar"
    tar.write_bytes(data)
    with tarfile.open(tar) as t:
        t.extractall(into, filter="data")
    return into / "src"


def agent_config(path: Path, service: str, sink_port: int, spool: Path, gpu_endpoint: str | None) -> Path:
    collectors = [{"type": "host", "interval_seconds": 1}]
    if gpu_endpoint:
        collectors += [{"type": "nvml", "interval_seconds": 1},
                       {"type": "inference", "interval_seconds": 1,
                        "endpoints": [{"url": gpu_endpoint, "kind": "vllm", "model": "bench-model"}]}]
    cfg = {"resource": {"service_name": service},
           "agent": {"exporter": {"endpoint": f"http://127.0.0.1:{sink_port}", "spool_dir": str(spool),
                                  "export_interval_seconds": 1}},
           "collectors": collectors}
    path.write_text(json.dumps(cfg))  # JSON is YAML
    return path


def scrape_loop(url: str, stop: threading.Event, stats: dict) -> None:
    while not stop.wait(1.0):
        try:
            with urllib.request.urlopen(url, timeout=5) as r:
                stats["bytes"] = len(r.read())
                stats["scrapes"] = stats.get("scrapes", 0) + 1
        except OSError as err:
            stats["errors"] = stats.get("errors", 0) + 1
            stats["last_error"] = str(err)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=60.0, help="measurement window (default 60)")
    ap.add_argument("--warmup-seconds", type=float, default=5.0)
    ap.add_argument("--scenario", choices=("host", "gpu", "all"), default="all")
    ap.add_argument("--baseline-ref", help="also run the agent from this git ref's src/ (e.g. HEAD~3)")
    ap.add_argument("--json", help="write the figures to this file too")
    args = ap.parse_args()

    infersight = Path(sys.executable).with_name("infersight")
    if not infersight.exists():
        print(f"{infersight} not found: install the project (pip install -e .)", file=sys.stderr)
        return 2
    node_exporter = shutil.which(NODE_EXPORTER)
    tmp = Path(tempfile.mkdtemp(prefix="agent-overhead-"))
    started: list[subprocess.Popen] = []
    stop_scrape = threading.Event()

    def spawn(cmd: list[str], env: dict | None = None, log: Path | None = None, **kw) -> subprocess.Popen:
        out = open(log, "wb") if log else subprocess.DEVNULL  # noqa: SIM115 (closed with the process)
        p = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT if log else subprocess.DEVNULL,
                             **kw)
        started.append(p)
        return p

    try:
        sink_port = free_port()
        sink = subprocess.Popen([sys.executable, "-c", SINK, str(sink_port)], stdout=subprocess.PIPE, text=True)
        started.append(sink)
        assert sink.stdout is not None and sink.stdout.readline().strip() == "ready"

        measured: list[Measured] = []
        scrape_stats: dict = {}
        if node_exporter:
            ne_port = free_port()
            ne = spawn([node_exporter, f"--web.listen-address=127.0.0.1:{ne_port}"], log=tmp / "node_exporter.log")
            wait_port(ne_port)
            threading.Thread(target=scrape_loop, args=(f"http://127.0.0.1:{ne_port}/metrics", stop_scrape,
                                                       scrape_stats), daemon=True).start()
            measured.append(Measured("node_exporter (scraped every 1 s)", ne, extra=scrape_stats))
        else:
            print(f"{NODE_EXPORTER} not installed (apt-get install {NODE_EXPORTER}); no node_exporter figures",
                  file=sys.stderr)

        gpu_endpoint = None
        if args.scenario in ("gpu", "all"):
            www = tmp / "www"
            www.mkdir()
            shutil.copy(VLLM_FIXTURE, www / "metrics")
            vllm_port = free_port()
            spawn([sys.executable, "-m", "http.server", "-b", "127.0.0.1", "-d", str(www), str(vllm_port)])
            wait_port(vllm_port)
            gpu_endpoint = f"http://127.0.0.1:{vllm_port}/metrics"
            shim = tmp / "shim"
            shim.mkdir()
            (shim / "pynvml.py").write_text(PYNVML_SHIM)

        # (label, src/ tree or None for this checkout, slug suffix, extra environment)
        trees: list[tuple[str, Path | None, str, dict[str, str]]] = [("", None, "", {})]
        if args.baseline_ref:
            trees.insert(0, (f" @ {args.baseline_ref}", export_ref(args.baseline_ref, tmp / "baseline"), "-base", {}))
        trees.append((" (systemd unit's env)", None, "-unit", UNIT_ENV))
        scenarios = [s for s in ("host", "gpu") if args.scenario in (s, "all")]
        for scenario in scenarios:
            for label, src, suffix, extra_env in trees:
                slug = f"{scenario}{suffix}"
                env = {**os.environ, **extra_env}
                env.pop("PYTHONPATH", None)
                paths = ([str(tmp / "shim")] if scenario == "gpu" else []) + ([str(src)] if src else [])
                if paths:
                    env["PYTHONPATH"] = os.pathsep.join(paths)
                cfg = agent_config(tmp / f"{slug}.yaml", f"bench-{slug}", sink_port, tmp / f"spool-{slug}",
                                   gpu_endpoint if scenario == "gpu" else None)
                name = ("agent: host 1 s, export 1 s" if scenario == "host"
                        else "agent: host + 8 replayed GPUs + 1 vLLM endpoint, 1 s") + label
                log = tmp / f"{slug}.log"
                p = spawn([str(infersight), "--log-level", "WARNING", "agent", "--config", str(cfg)], env=env,
                          log=log)
                measured.append(Measured(name, p, log, f"bench-{slug}"))
        # Floors: what an interpreter costs before any agent code.
        for name, code in (("floor: bare python", "import time; time.sleep(1e6)"),
                           ("floor: python + psutil", "import psutil, time; psutil.cpu_times(); time.sleep(1e6)"),
                           ("floor: + one pydantic model", FLOOR_PYDANTIC),
                           ("floor: + yaml, argparse, logging, http.client", FLOOR_LIBS)):
            measured.append(Measured(name, spawn([sys.executable, "-c", code])))

        time.sleep(args.warmup_seconds)
        for m in measured:
            if m.proc.poll() is not None:
                raise RuntimeError(f"{m.name} exited with {m.proc.returncode}: "
                                   f"{m.log.read_text()[-2000:] if m.log else ''}")
            m.cpu0 = cpu_seconds(m.proc.pid)
        t0 = time.monotonic()
        time.sleep(args.seconds)
        window = time.monotonic() - t0
        for m in measured:
            m.cpu = cpu_seconds(m.proc.pid) - m.cpu0
            m.hwm_kb = status_kb(m.proc.pid, "VmHWM")
            m.rss_kb = status_kb(m.proc.pid, "VmRSS")
        stop_scrape.set()
        for m in measured:
            m.proc.send_signal(signal.SIGTERM)
        for m in measured:
            m.proc.wait(30)
        sink.send_signal(signal.SIGTERM)
        out, _ = sink.communicate(timeout=30)
        counts = json.loads(out.strip().splitlines()[-1])
    finally:
        stop_scrape.set()
        for p in started:
            if p.poll() is None:
                p.kill()
                p.wait(10)
        shutil.rmtree(tmp, ignore_errors=True)

    ne_m = next((m for m in measured if m.name.startswith("node_exporter")), None)
    rows = []
    print(f"\nwindow {window:.1f} s after {args.warmup_seconds:g} s warm-up; "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}")
    print(f"{'process':<72} {'peak RSS':>9} {'RSS now':>9} {'CPU':>9} {'vs node_exporter':>17}  points exported")
    for m in measured:
        share = m.cpu / window * 100
        ratio = (f"{m.hwm_kb / ne_m.hwm_kb:4.2f}x RSS "
                 f"{(m.cpu / ne_m.cpu if ne_m.cpu else float('nan')):4.2f}x CPU") if ne_m and m is not ne_m else ""
        exported = f"{counts.get(m.service, 0):,}" if m.service else ""
        if m is ne_m:
            exported = f"{scrape_stats.get('scrapes', 0)} scrapes of {scrape_stats.get('bytes', 0):,} bytes"
        print(f"{m.name:<72} {m.hwm_kb / 1024:7.1f}MB {m.rss_kb / 1024:7.1f}MB {share:7.3f} % {ratio:>17}  {exported}")
        rows.append({"process": m.name, "peak_rss_kb": m.hwm_kb, "rss_kb": m.rss_kb, "cpu_seconds": m.cpu,
                     "core_percent": share, "points_exported": counts.get(m.service) if m.service else None})
    host = next((m for m in measured if m.service == "bench-host"), None)
    failed = False
    if host is not None:
        ok_rss, ok_cpu = host.hwm_kb <= RSS_TARGET_KB, host.cpu / window * 100 <= CPU_TARGET
        print(f"target (host 1 s, export 1 s): peak RSS <= 35 MB {'met' if ok_rss else 'NOT met'}, "
              f"<= {CPU_TARGET} % of a core {'met' if ok_cpu else 'NOT met'}")
        failed = not counts.get("bench-host")
    if args.json:
        Path(args.json).write_text(json.dumps({"window_seconds": window, "rows": rows}, indent=2))
    if failed:
        print("the host agent exported nothing: see its log", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
