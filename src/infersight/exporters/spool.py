"""A bounded on-disk queue of encoded OTLP batches.

Every batch goes through the spool: written first (tmp + fsync + rename, so a kill -9
leaves either a whole file or an ignored `.tmp`), then sent oldest-first and deleted
on success. The file name carries the order, the idempotency key (stable across
re-sends and restarts) and the point count:  `<seq>-<uuid>-<points>.otlp`.
Not thread-safe: one owner (the agent's export task) uses it at a time.
"""
from __future__ import annotations

import fcntl
import logging
import os
import re
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from infersight.exporters.otlp import Sender, SendResult

log = logging.getLogger(__name__)

_NAME = re.compile(r"^(\d{16})-([0-9a-f-]{36})-(\d+)\.otlp$")
_LOCK = ".lock"


class SpoolInUse(Exception):
    """Another agent owns this spool directory (two senders would re-send and delete each other's batches)."""


@dataclass(frozen=True, slots=True, order=True)
class SpoolEntry:
    seq: int
    key: str = field(compare=False)
    points: int = field(compare=False)
    size: int = field(compare=False)
    path: Path = field(compare=False)


@dataclass(slots=True)
class DrainReport:
    """What one drain did; `failure` is set when it stopped on a retryable error."""

    sent_batches: int = 0
    sent_points: int = 0
    rejected: list[tuple[SpoolEntry, str]] = field(default_factory=list)
    failure: SendResult | None = None


class Spool:
    def __init__(self, directory: Path, max_bytes: int) -> None:
        self.directory = Path(directory)
        self.max_bytes = max_bytes
        self.directory.mkdir(parents=True, exist_ok=True)
        # Held for the process's lifetime; the kernel releases it even on kill -9.
        self._lock = open(self.directory / _LOCK, "a")  # noqa: SIM115
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._lock.close()
            raise SpoolInUse(f"spool directory {self.directory} is in use by another agent") from None
        self.dropped_batches = 0
        self.dropped_points = 0
        self._entries: list[SpoolEntry] = []
        for path in self.directory.iterdir():
            if path.name == _LOCK:
                continue
            if path.name.endswith(".tmp"):
                # Torn write from a killed agent: never renamed, so never acknowledged as spooled.
                path.unlink(missing_ok=True)
            elif m := _NAME.match(path.name):
                self._entries.append(SpoolEntry(int(m[1]), m[2], int(m[3]), path.stat().st_size, path))
            else:
                log.warning("ignoring unexpected file in spool: %s", path)
        self._entries.sort()
        self._bytes = sum(e.size for e in self._entries)
        self._next_seq = self._entries[-1].seq + 1 if self._entries else 0
        if self._entries:
            log.info("spool %s: %d pending batches (%d bytes) from a previous run",
                     self.directory, len(self._entries), self.bytes)

    def close(self) -> None:
        self._lock.close()

    @property
    def bytes(self) -> int:
        return self._bytes

    def entries(self) -> list[SpoolEntry]:
        """Pending batches, oldest first."""
        return list(self._entries)

    def put(self, payload: bytes, points: int) -> SpoolEntry:
        """Durably store one batch, then drop the oldest batches while over the bound."""
        key = str(uuid.uuid4())
        path = self.directory / f"{self._next_seq:016d}-{key}-{points}.otlp"
        tmp = path.with_name(path.name + ".tmp")
        with open(tmp, "wb") as f:
            f.write(payload)
            f.flush()
            os.fsync(f.fileno())
        os.rename(tmp, path)
        _fsync_dir(self.directory)
        entry = SpoolEntry(self._next_seq, key, points, len(payload), path)
        self._next_seq += 1
        self._entries.append(entry)
        self._bytes += entry.size
        log.debug("spooled batch %s (%d points, %d bytes)", key, points, len(payload))
        while self.bytes > self.max_bytes and self._entries:
            oldest = self._entries[0]
            log.warning("spool over %d bytes: dropping oldest batch %s (%d points)",
                        self.max_bytes, oldest.key, oldest.points)
            self.remove(oldest)
            self.dropped_batches += 1
            self.dropped_points += oldest.points
        return entry

    def remove(self, entry: SpoolEntry) -> None:
        entry.path.unlink(missing_ok=True)
        self._forget(entry)

    def _forget(self, entry: SpoolEntry) -> None:
        self._entries.remove(entry)
        self._bytes -= entry.size

    def drain(self, sender: Sender) -> DrainReport:
        """Send pending batches in order; stop at the first retryable failure (order is kept)."""
        report = DrainReport()
        for entry in self.entries():
            try:
                payload = entry.path.read_bytes()
            except OSError as err:  # removed or damaged behind our back: skip it, keep the rest
                self._forget(entry)
                log.error("spooled batch %s unreadable, dropped: %s", entry.key, err)
                report.rejected.append((entry, "unreadable"))
                continue
            result = sender.send(payload, entry.key)
            if result.outcome == "retry":
                report.failure = result
                break
            self.remove(entry)
            if result.outcome == "ok":
                log.debug("exported batch %s (%d points)", entry.key, entry.points)
                report.sent_batches += 1
                report.sent_points += entry.points
            else:
                log.error("receiver rejected batch %s (%d points): %s; dropped, not retryable",
                          entry.key, entry.points, result.reason)
                report.rejected.append((entry, result.reason))
        return report


def _fsync_dir(directory: Path) -> None:
    """Make the rename itself durable."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
