"""Which container or Kubernetes pod a process belongs to, read from `<proc_root>/<pid>/cgroup`.

Handles cgroup v1 and v2 paths written by Docker, containerd and CRI-O, with either the
cgroupfs or the systemd cgroup driver, e.g.
`0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod<uid>.slice/cri-containerd-<id>.scope`
or `12:memory:/docker/<id>`.
"""
from __future__ import annotations

import contextlib
import re
from pathlib import Path

_POD = re.compile(r"pod([0-9a-f]{8}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{12})")
_CONTAINER = re.compile(r"^(?:docker-|cri-containerd-|crio-|containerd-|libpod-)?([0-9a-f]{64})(?:\.scope)?$")


def parse_cgroup(text: str) -> dict[str, str]:
    """`container.id` and `k8s.pod.uid` found in the text of a /proc/<pid>/cgroup file."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        path = line.split(":", 2)[-1]
        if "k8s.pod.uid" not in out and (m := _POD.search(path)):
            out["k8s.pod.uid"] = m.group(1).replace("_", "-")
        if "container.id" not in out:
            for part in reversed(path.split("/")):
                if m := _CONTAINER.match(part):
                    out["container.id"] = m.group(1)
                    break
    return out


def process_attributes(proc_root: Path, pid: int) -> dict[str, str]:
    """Executable name and container/pod of PID; empty where /proc says nothing (or it has gone)."""
    base = proc_root / str(pid)
    out: dict[str, str] = {}
    with contextlib.suppress(OSError):
        out.update(parse_cgroup((base / "cgroup").read_text()))
    with contextlib.suppress(OSError):
        out["process.executable.name"] = (base / "comm").read_text().strip()
    return out
