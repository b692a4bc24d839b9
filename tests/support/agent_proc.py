"""Run `infersight agent` as a real subprocess and read back what it spooled (spool/agent tests)."""
from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import yaml

SPOOLED = re.compile(r"spooled batch (\S+) \((\d+) points")
SPOOL_FILE = re.compile(r"^\d{16}-(.{36})-(\d+)\.otlp$")


def write_config(path: Path, endpoint: str, spool_dir: Path, collect_seconds: float = 0.2,
                 self_metrics_seconds: float = 0.5, **exporter) -> Path:
    cfg = {
        "resource": {"service_name": "spool-test", "attributes": {"deployment.environment": "test"}},
        "agent": {"exporter": {"endpoint": endpoint, "spool_dir": str(spool_dir), "export_interval_seconds": 0.3,
                               "retry_interval_seconds": 0.3, "timeout_seconds": 2, **exporter},
                  "self_metrics_interval_seconds": self_metrics_seconds},
        "collectors": [{"type": "host", "interval_seconds": collect_seconds}],
    }
    path.write_text(yaml.safe_dump(cfg))
    return path


class AgentProc:
    def __init__(self, config: Path, log_path: Path) -> None:
        self.log_path = log_path
        self._log = open(log_path, "ab")  # noqa: SIM115 -- the child writes to it until terminate() closes it
        self.proc = subprocess.Popen([sys.executable, "-m", "infersight.cli", "--log-level", "DEBUG",
                                      "agent", "--config", str(config)], stdout=self._log, stderr=self._log)

    def terminate(self, timeout: float = 20) -> int:
        self.proc.send_signal(signal.SIGTERM)
        rc = self.proc.wait(timeout)
        self._log.close()
        return rc

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait(10)
        self._log.close()

    def log(self) -> str:
        return self.log_path.read_text()


def spooled(log_text: str) -> dict[str, int]:
    """Batches the agent logged as durably spooled: key -> points."""
    return {k: int(n) for k, n in SPOOLED.findall(log_text)}


def spool_files(spool_dir: Path) -> dict[str, int]:
    """Batches in the spool, in send order: key -> points."""
    return {m[1]: int(m[2]) for p in sorted(spool_dir.glob("*.otlp")) if (m := SPOOL_FILE.match(p.name))}


def wait_for(cond: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)
