"""`infersight doctor [--config FILE] [--format json]`: is this node ready to be observed?

Checks, each ok / warn / fail / skip with a one-line detail (exit 1 when any fails):
- nvml: the NVIDIA driver's NVML and its GPUs (name, UUID, GPM supported or not); skipped when the
  config has no `nvml` collector and NVML is absent;
- neuron: `/dev/neuron*` devices and `neuron-monitor` on PATH (only with a `neuron` collector, or devices);
- inference: each configured endpoint reachable, its server kind (configured or detected from the
  metric names) and version, and which SLIs it can feed and why not ("no TTFT: tgi exposes none");
- cloud: the instance identity, only when `resource.detect_cloud` is opted in (it calls link-local metadata);
- spool: `agent.exporter.spool_dir` exists or can be made, and is writable;
- server: the exporter endpoint answers, the token is accepted (an empty OTLP export: nothing is stored),
  and the clock skew against the server's `Date` header (OTLP/HTTP; not measured over gRPC).
Every probe is injected through `Doctor(...)` (the NVML binding, the device directory, the HTTP fetch,
the clock), so tests run it with the NVML replay double and local servers.
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import email.utils
import json
import os
import shutil
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from infersight.config import Config, ConfigError, load_config

MAX_SKEW_SECONDS = 2.0
SLIS = (  # (SLI, the inference metric spec name in collectors.inference.metrics, what it is)
    ("availability", "REQUESTS", "request outcomes (good/bad)"),
    ("latency e2e", "DURATION", "request duration histogram"),
    ("latency ttft", "TTFT", "time-to-first-token histogram"),
    ("latency tpot", "TPOT", "time-per-output-token histogram"),
    ("cost / tokens", "TOKENS", "token counters"),
)


@dataclass
class Check:
    name: str
    status: str  # ok | warn | fail | skip
    detail: str
    data: dict[str, Any] = field(default_factory=dict)


@dataclass
class Http:
    status: int
    headers: dict[str, str]
    body: bytes


def http_request(url: str, timeout: float, data: bytes | None = None, headers: dict[str, str] | None = None) -> Http:
    """One request without proxies (node-local and server addresses); HTTP errors are answers, not exceptions."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    req = urllib.request.Request(url, data=data, headers=headers or {}, method="POST" if data is not None else "GET")
    try:
        with opener.open(req, timeout=timeout) as resp:
            return Http(resp.status, dict(resp.headers.items()), resp.read(1 << 20))
    except urllib.error.HTTPError as err:
        return Http(err.code, dict(err.headers.items()), err.read(1 << 16))


def _load_pynvml() -> Any:
    try:
        import pynvml
    except ImportError:
        return None
    return pynvml


class Doctor:
    def __init__(self, cfg: Config, nvml: Any = None, load_nvml: Callable[[], Any] = _load_pynvml,
                 dev_dir: Path = Path("/dev"), which: Callable[[str], str | None] = shutil.which,
                 fetch: Callable[..., Http] = http_request, clock: Callable[[], float] = time.time,
                 timeout_seconds: float = 3.0) -> None:
        self.cfg = cfg
        self.nvml = nvml
        self.load_nvml = load_nvml
        self.dev_dir = dev_dir
        self.which = which
        self.fetch = fetch
        self.clock = clock
        self.timeout = timeout_seconds

    def collectors(self, kind: str) -> list[Any]:
        return [c for c in self.cfg.collectors if c.type == kind]

    def run(self) -> list[Check]:
        checks = [self.check_nvml(), self.check_neuron(), *self.check_inference(), self.check_cloud(),
                  self.check_spool(), *self.check_server()]
        return [c for c in checks if c is not None]

    # -- accelerators ------------------------------------------------------------------------------
    def check_nvml(self) -> Check:
        wanted = bool(self.collectors("nvml"))
        n = self.nvml if self.nvml is not None else self.load_nvml()
        if n is None:
            return Check("nvml", "fail" if wanted else "skip",
                         "pynvml not installed (pip install 'infersight[nvidia]')" if wanted else "no nvml collector "
                         "configured and pynvml not installed")
        try:
            n.nvmlInit()
        except Exception as err:  # noqa: BLE001 -- NVMLError and loader errors alike
            return Check("nvml", "fail" if wanted else "skip", f"NVML unavailable: {err} (driver loaded? "
                         "/dev/nvidia* readable?)")
        try:
            driver = n.nvmlSystemGetDriverVersion()
            gpus = []
            for i in range(n.nvmlDeviceGetCount()):
                h = n.nvmlDeviceGetHandleByIndex(i)
                try:
                    support = n.nvmlGpmQueryDeviceSupport(h)
                    gpm = bool(support.isSupportedDevice)
                except Exception:  # noqa: BLE001 -- NOT_SUPPORTED on pre-Hopper GPUs and old drivers
                    gpm = False
                gpus.append({"index": i, "name": _text(n.nvmlDeviceGetName(h)), "uuid": _text(n.nvmlDeviceGetUUID(h)),
                             "gpm": gpm})
        except Exception as err:  # noqa: BLE001
            return Check("nvml", "fail", f"NVML answered nvmlInit but not the device queries: {err}")
        finally:
            with contextlib.suppress(Exception):  # shutdown is best effort
                n.nvmlShutdown()
        if not gpus:
            return Check("nvml", "fail" if wanted else "warn", f"driver {_text(driver)}: no GPUs visible",
                         {"driver": _text(driver), "gpus": []})
        listed = ", ".join(f"gpu{g['index']} {g['name']} ({'GPM supported' if g['gpm'] else 'no GPM'})" for g in gpus)
        return Check("nvml", "ok", f"driver {_text(driver)}, {len(gpus)} GPU(s): {listed}",
                     {"driver": _text(driver), "gpus": gpus})

    def check_neuron(self) -> Check | None:
        wanted = bool(self.collectors("neuron"))
        try:
            devices = sorted(p.name for p in self.dev_dir.glob("neuron*") if p.name[6:].isdigit())
        except OSError:
            devices = []
        if not wanted and not devices:
            return None
        monitor = self.which("neuron-monitor")
        if not devices:
            return Check("neuron", "fail", f"no Neuron devices in {self.dev_dir} (aws-neuronx-dkms installed?)")
        if monitor is None:
            return Check("neuron", "fail" if wanted else "warn", f"{len(devices)} device(s) ({', '.join(devices)}) but "
                         "neuron-monitor is not on PATH (aws-neuronx-tools)", {"devices": devices})
        return Check("neuron", "ok", f"{len(devices)} device(s) ({', '.join(devices)}), neuron-monitor at {monitor}",
                     {"devices": devices, "neuron_monitor": monitor})

    # -- inference endpoints -----------------------------------------------------------------------
    def check_inference(self) -> Iterable[Check]:
        for c in self.collectors("inference"):
            for ep in c.endpoints:
                yield self._endpoint(ep)

    def _endpoint(self, ep: Any) -> Check:
        from prometheus_client.parser import text_string_to_metric_families

        from infersight.collectors.inference import metrics as specs
        from infersight.collectors.inference.model import Context
        from infersight.collectors.inference.scrape import detect_kind
        from infersight.collectors.inference.servers import SERVERS

        name = f"inference {ep.url}"
        try:
            resp = self.fetch(ep.url, self.timeout)
        except Exception as err:  # noqa: BLE001 -- refused, timeout, DNS
            return Check(name, "fail", f"unreachable: {_reason(err)}")
        if resp.status != 200:
            return Check(name, "fail", f"HTTP {resp.status} from the metrics endpoint")
        try:
            families = {f.name: f for f in text_string_to_metric_families(resp.body.decode("utf-8", "replace"))}
        except Exception as err:  # noqa: BLE001
            return Check(name, "fail", f"not a Prometheus exposition: {err}")
        kind = ep.kind if ep.kind != "auto" else detect_kind(families)
        if kind is None:
            return Check(name, "fail", "reachable, but the server kind cannot be detected from its metric names; set "
                                       "`kind` on the endpoint")
        module = SERVERS[kind]
        readings = list(module.readings(families, Context(kind, "", ep.model, ep.tenant, None, {})))
        seen = {r.spec.name for r in readings}
        version = next((r.attrs["version"] for r in readings if r.attrs.get("version")), None) \
            or self._version(ep.url)
        can, cannot = [], []
        for sli, spec_name, what in SLIS:
            spec = getattr(specs, spec_name)
            if spec.name in seen:
                can.append(sli)
            elif not any(v is spec for v in vars(module).values()):
                cannot.append(f"no {sli}: {kind} exposes no {what}")
            else:
                cannot.append(f"no {sli}: not in this scrape (no traffic yet, or a {kind} version without it)")
        detail = f"{kind}{' ' + version if version else ''} ({'detected' if ep.kind == 'auto' else 'configured'}); " \
                 f"feeds {', '.join(can) or 'no SLI'}" + (f"; {'; '.join(cannot)}" if cannot else "")
        return Check(name, "ok" if can else "warn", detail,
                     {"kind": kind, "version": version, "slis": can, "missing": cannot})

    def _version(self, metrics_url: str) -> str | None:
        """`GET /version` (vLLM, SGLang) or `GET /info` (TGI), when the server has them."""
        base = metrics_url.split("/metrics", 1)[0].rstrip("/")
        for path in ("/version", "/info"):
            try:
                resp = self.fetch(base + path, self.timeout)
                if resp.status == 200:
                    v = json.loads(resp.body).get("version")
                    if v:
                        return str(v)
            except Exception:  # noqa: BLE001 -- optional
                continue
        return None

    # -- identity, spool, server -------------------------------------------------------------------
    def check_cloud(self) -> Check:
        r = self.cfg.resource
        if not r.detect_cloud:
            return Check("cloud", "skip", "resource.detect_cloud is off (opt-in: it calls the link-local metadata "
                                          "service)")
        from infersight.agent.resource import DEFAULT_METADATA_URL, CloudDetectionError, detect_cloud

        base = r.cloud_metadata_base_url or DEFAULT_METADATA_URL
        try:
            attrs = asyncio.run(detect_cloud(base, r.cloud_metadata_timeout_seconds))
        except CloudDetectionError as err:
            return Check("cloud", "fail", str(err))
        shown = ", ".join(f"{k}={v}" for k, v in sorted(attrs.items()) if k.startswith("cloud."))
        return Check("cloud", "ok", shown or "identified", {"attributes": attrs})

    def check_spool(self) -> Check:
        spool = self.cfg.agent.exporter.spool_dir
        try:
            spool.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=spool, prefix=".doctor-"):
                pass
        except OSError as err:
            return Check("spool", "fail", f"{spool}: not writable ({err.strerror or err}); set "
                                          "agent.exporter.spool_dir or fix its owner")
        free = shutil.disk_usage(spool).free
        limit = self.cfg.agent.exporter.max_spool_bytes
        status = "ok" if free >= limit else "warn"
        return Check("spool", status, f"{spool} writable, {free // (1 << 20)} MiB free "
                                      f"(agent.exporter.max_spool_bytes {limit // (1 << 20)} MiB)")

    def check_server(self) -> Iterable[Check]:
        ex = self.cfg.agent.exporter
        headers = {k: v.get_secret_value() for k, v in ex.headers.items()}
        if ex.protocol == "grpc":
            yield self._grpc(ex.endpoint, headers)
            return
        from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest

        base = ex.endpoint.rstrip("/")
        sent = self.clock()
        try:
            resp = self.fetch(f"{base}/v1/metrics", self.timeout, ExportMetricsServiceRequest().SerializeToString(),
                              {"Content-Type": "application/x-protobuf", **headers})
        except Exception as err:  # noqa: BLE001
            yield Check("server", "fail", f"{base}: unreachable ({_reason(err)}); agent.exporter.endpoint")
            return
        received = self.clock()
        if resp.status in (401, 403):
            yield Check("server", "fail", f"{base}: token refused (HTTP {resp.status}); agent.exporter.headers "
                                          "Authorization: Bearer <token with the ingest scope>")
        elif resp.status != 200:
            yield Check("server", "fail", f"{base}/v1/metrics answered HTTP {resp.status}")
        else:
            yield Check("server", "ok", f"{base} accepts OTLP/HTTP" + (" with the configured token" if headers else ""))
        date = next((v for k, v in resp.headers.items() if k.lower() == "date"), None)
        if date is None:
            yield Check("clock", "warn", "the server sent no Date header: skew unknown")
            return
        server_time = email.utils.parsedate_to_datetime(date).timestamp()
        # Date has 1 s resolution: the server's clock read somewhere in [sent, received] rounded down.
        skew = server_time + 0.5 - (sent + received) / 2
        status = "ok" if abs(skew) <= MAX_SKEW_SECONDS + (received - sent) / 2 else "fail"
        yield Check("clock", status, f"{skew:+.1f} s against the server (limit ±{MAX_SKEW_SECONDS:g} s; "
                                     "points outside SLO windows would be misplaced)", {"skew_seconds": skew})

    def _grpc(self, endpoint: str, headers: dict[str, str]) -> Check:
        from infersight.exporters.senders import GrpcSender

        try:
            sender = GrpcSender(endpoint, headers, self.timeout)
        except Exception as err:  # noqa: BLE001
            return Check("server", "fail", f"{endpoint}: {err}")
        try:
            result = sender.send(b"", f"doctor-{os.getpid()}-{self.clock()}")
        finally:
            sender.close()
        if result.outcome == "ok":
            return Check("server", "ok", f"{endpoint} accepts OTLP/gRPC (clock skew is measured over OTLP/HTTP only)")
        if result.outcome == "auth":
            return Check("server", "fail", f"{endpoint}: token refused ({result.reason}: {result.detail})")
        return Check("server", "fail", f"{endpoint}: {result.reason} {result.detail}".strip())


def _text(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


def _reason(err: BaseException) -> str:
    return str(getattr(err, "reason", None) or err)


def render(checks: list[Check]) -> str:
    marks = {"ok": "ok  ", "warn": "warn", "fail": "FAIL", "skip": "skip"}
    return "\n".join(f"[{marks[c.status]}] {c.name}: {c.detail}" for c in checks)


def _doctor(args: argparse.Namespace) -> int:
    try:
        cfg = load_config(args.config)
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    checks = Doctor(cfg, timeout_seconds=args.timeout_seconds).run()
    ok = not any(c.status == "fail" for c in checks)
    if args.format == "json":
        print(json.dumps({"ok": ok, "checks": [asdict(c) for c in checks]}, indent=2, default=str))
    else:
        print(render(checks))
    return 0 if ok else 1


def register(sub: argparse._SubParsersAction) -> None:
    """`doctor`."""
    p = sub.add_parser("doctor", help="check this node: GPUs, Neuron, inference endpoints, spool, server, clock")
    p.add_argument("--config", help="the agent's configuration file (defaults when omitted)")
    p.add_argument("--format", choices=("text", "json"), default="text")
    p.add_argument("--timeout-seconds", type=float, default=3.0, help="per network check")
    p.set_defaults(func=_doctor)
