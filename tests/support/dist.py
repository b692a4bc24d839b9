"""Build the sdist and wheel once per test session and install the wheel into a fresh venv.

Once per session also under pytest-xdist: the first worker that needs them builds them in the session's
shared temporary folder, under a file lock, and the others wait and reuse them (each costs a minute or
more of CPU: the wheel build, and pip installing chDB and pyarrow).

The venv is made by `python -m venv` without system site-packages, so nothing of the source tree or of
the development venv is importable there: what runs is what the wheel ships, with the dependencies pip
resolves for it and the `server` extra (chDB, pyarrow) as a user would install it. `--no-compile` skips
writing bytecode for the 700 MB of chDB and pyarrow (a third of the install's time); Python compiles
what it imports.
"""
from __future__ import annotations

import contextlib
import fcntl
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
_built: dict[str, Path] = {}


def _shared(factory: pytest.TempPathFactory) -> Path:
    """This session's temporary folder that every xdist worker sees (each worker's own is inside it)."""
    base = factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


@contextlib.contextmanager
def _once(factory: pytest.TempPathFactory, name: str):
    """(folder, done): `name` in the shared folder, held under an exclusive lock; done if built before."""
    folder = _shared(factory) / f"infersight-{name}"
    with open(_shared(factory) / f"infersight-{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield folder, (folder / ".done").exists()


def build_dist(factory: pytest.TempPathFactory) -> Path:
    """The folder with the sdist and the wheel `python -m build` made from the work tree (once a session)."""
    if "dist" not in _built:
        with _once(factory, "dist") as (out, done):
            if not done:
                out.mkdir(exist_ok=True)
                subprocess.run([sys.executable, "-m", "build", "--outdir", str(out), str(ROOT)], check=True,
                               capture_output=True, timeout=300)
                (out / ".done").touch()
        _built["dist"] = out
    return _built["dist"]


def installed_venv(factory: pytest.TempPathFactory) -> Path:
    """A fresh venv with the built wheel and its `server` extra installed (once a session)."""
    if "venv" not in _built:
        wheel = next(build_dist(factory).glob("infersight-*.whl"))
        with _once(factory, "venv") as (venv, done):
            if not done:
                subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True, timeout=120)
                subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--no-compile",
                                f"{wheel}[server]"],
                               check=True, capture_output=True, timeout=600)
                (venv / ".done").touch()
        _built["venv"] = venv
    return _built["venv"]


def clean_env(**extra: str) -> dict[str, str]:
    """The environment without anything that could point Python at the source tree or another venv."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PYTHON", "VIRTUAL_ENV", "OTEL_")) and k != "PATH"}
    env["PATH"] = "/usr/bin:/bin"
    return {**env, **extra}


def wait_ready(base_url: str, proc: subprocess.Popen, timeout: float = 60.0) -> None:
    """Until GET /readyz answers 200; fails early when the server process exits."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"server exited with {proc.returncode}"
        try:
            with urllib.request.urlopen(base_url + "/readyz", timeout=2) as resp:
                if resp.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.2)
    raise AssertionError(f"{base_url}/readyz not 200 within {timeout} s")


def call(base_url: str, method: str, path: str, body: object = None, token: str | None = None) -> tuple[int, object]:
    """(status, decoded JSON) of one API call."""
    headers = {"Content-Type": "application/json", **({"Authorization": f"Bearer {token}"} if token else {})}
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(base_url + path, method=method, data=data, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode(errors="replace")
