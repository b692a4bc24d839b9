"""A bounded on-disk queue of encoded OTLP batches, with a bounded dead-letter area beside it.

Every batch goes through the spool: written first (tmp + rename, so a kill -9 leaves
either a whole file or an ignored `.tmp`; the page cache survives a crash of the
process), then sent oldest-first and deleted on success. `sync` fsyncs the batches
that are still here (and the directory) for a power loss: the drain calls it when it
ends, so a batch sent and deleted a few ms after it was written never costs an fsync
(~430 us of kernel time each), while one that stays (send failed, backlog) is durable
by the end of the export cycle. The file name carries the order, the idempotency key (stable across
re-sends and restarts) and the point count:  `<seq>-<uuid>-<points>.otlp`.
A batch the receiver refuses for good is moved, under the same name, to `rejected/`
with a `.json` note of why, so one bad batch cannot block the rest and an operator can
inspect it or replay it (move it back while the agent is stopped).
One drain runs at a time (the agent's export task), but `put` may run alongside it
(shutdown spools the buffer while a send is still in flight), so bookkeeping is locked.
"""
from __future__ import annotations

import builtins
import fcntl
import logging
import os
import re
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from infersight.exporters.senders import Sender, SendResult

log = logging.getLogger(__name__)

_NAME = re.compile(r"^(\d{16})-([0-9a-f-]{36})-(\d+)\.otlp$")
_LOCK = ".lock"
REJECTED_DIR = "rejected"


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
    """What one drain did. `failure`: it stopped on a retryable (or auth) error; `interrupted`: it stopped at
    its deadline or when cancelled, with batches still pending; `rejected`: set aside, with the refusal;
    `partial`: accepted with some points dropped by the receiver."""

    sent_batches: int = 0
    sent_points: int = 0
    partial: list[tuple[SpoolEntry, SendResult]] = field(default_factory=list)
    rejected: list[tuple[SpoolEntry, SendResult]] = field(default_factory=list)
    unreadable: list[SpoolEntry] = field(default_factory=list)
    failure: SendResult | None = None
    interrupted: bool = False


class Spool:
    def __init__(self, directory: Path, max_bytes: int, *, max_rejected_bytes: int = 32 * 1024 * 1024,
                 max_rejected_batches: int = 1000, fsync: Callable[[int], None] = os.fsync) -> None:
        self.directory = Path(directory)
        self._fsync = fsync
        self.rejected_dir = self.directory / REJECTED_DIR
        self.max_bytes = max_bytes
        self.max_rejected_bytes = max_rejected_bytes
        self.max_rejected_batches = max_rejected_batches
        self.directory.mkdir(parents=True, exist_ok=True)
        # Held for the process's lifetime; the kernel releases it even on kill -9.
        self._lock = open(self.directory / _LOCK, "a")  # noqa: SIM115
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._lock.close()
            raise SpoolInUse(f"spool directory {self.directory} is in use by another agent") from None
        self.rejected_dir.mkdir(exist_ok=True)
        self._mutex = threading.Lock()
        self.dropped_batches = 0
        self.dropped_points = 0
        self.evicted_rejected_batches = 0
        self.evicted_rejected_points = 0
        self._entries = self._scan(self.directory)
        self._rejected = self._scan(self.rejected_dir)
        self._bytes = sum(e.size for e in self._entries)
        # Batches not fsynced yet (by seq); those left by a killed agent may not be either.
        self._unsynced = {e.seq for e in self._entries}
        self._next_seq = max((e.seq + 1 for e in self._entries + self._rejected), default=0)
        if self._entries:
            log.info("spool %s: %d pending batches (%d bytes) from a previous run",
                     self.directory, len(self._entries), self.bytes)

    @staticmethod
    def _scan(directory: Path) -> list[SpoolEntry]:
        entries = []
        for path in directory.iterdir():
            if path.name in (_LOCK, REJECTED_DIR) or path.name.endswith(".json"):
                continue
            if path.name.endswith(".tmp"):
                # Torn write from a killed agent: never renamed, so never acknowledged as spooled.
                path.unlink(missing_ok=True)
            elif m := _NAME.match(path.name):
                entries.append(SpoolEntry(int(m[1]), m[2], int(m[3]), path.stat().st_size, path))
            else:
                log.warning("ignoring unexpected file in spool: %s", path)
        return sorted(entries)

    def close(self) -> None:
        self._lock.close()

    @property
    def bytes(self) -> int:
        with self._mutex:  # not mid-way through a `put` that is still dropping the oldest batches
            return self._bytes

    @property
    def rejected_bytes(self) -> int:
        return sum(e.size for e in self.rejected())

    def entries(self) -> list[SpoolEntry]:
        """Pending batches, oldest first."""
        with self._mutex:
            return list(self._entries)

    def rejected(self) -> list[SpoolEntry]:
        """Batches set aside in `rejected/`, oldest first."""
        with self._mutex:
            return list(self._rejected)

    def put(self, payload: builtins.bytes, points: int) -> SpoolEntry:  # builtins: `bytes` is a property here
        """Store one batch (safe from a crash of the agent; `sync` makes it safe from a power loss), then drop
        the oldest batches while over the bound."""
        key = str(uuid.uuid4())
        with self._mutex:
            seq, self._next_seq = self._next_seq, self._next_seq + 1
        path = self.directory / f"{seq:016d}-{key}-{points}.otlp"
        tmp = path.with_name(path.name + ".tmp")
        with open(tmp, "wb") as f:
            f.write(payload)
        os.rename(tmp, path)
        entry = SpoolEntry(seq, key, points, len(payload), path)
        with self._mutex:
            self._unsynced.add(seq)
            self._entries.append(entry)
            self._entries.sort()
            self._bytes += entry.size
            while self._bytes > self.max_bytes and self._entries:
                oldest = self._entries[0]
                log.warning("spool over %d bytes: dropping oldest batch %s (%d points)",
                            self.max_bytes, oldest.key, oldest.points)
                oldest.path.unlink(missing_ok=True)
                self._forget(oldest)
                self.dropped_batches += 1
                self.dropped_points += oldest.points
        log.debug("spooled batch %s (%d points, %d bytes)", key, points, len(payload))
        return entry

    def sync(self) -> int:
        """fsync each batch put since the last sync that is still pending, then the directory (their names);
        returns how many batches that was. A failure is logged: the batch is still safe from an agent crash."""
        with self._mutex:
            todo = [e for e in self._entries if e.seq in self._unsynced]
            self._unsynced.clear()
        if not todo:
            return 0
        try:
            for e in todo:
                try:
                    self._fsync_path(e.path)
                except FileNotFoundError:  # sent or dropped in the meantime
                    continue
            self._fsync_path(self.directory)
        except OSError as err:
            log.error("could not fsync the spool (%d batches): %s", len(todo), err)
        return len(todo)

    def _fsync_path(self, path: Path) -> None:
        fd = os.open(path, os.O_RDONLY)
        try:
            self._fsync(fd)
        finally:
            os.close(fd)

    def remove(self, entry: SpoolEntry) -> None:
        try:
            entry.path.unlink(missing_ok=True)
        except OSError as err:
            # The spool directory broke under us: forget it anyway; a copy left behind is re-sent after a restart
            # under the same idempotency key, so the receiver counts it once.
            log.warning("could not delete spooled batch %s: %s", entry.key, err)
        with self._mutex:
            self._forget(entry)

    def _forget(self, entry: SpoolEntry) -> None:
        """Caller holds the mutex. A batch may already be gone: dropped for space while it was being sent."""
        if entry in self._entries:  # entries compare by seq, which is unique
            self._entries.remove(entry)
            self._bytes -= entry.size
        self._unsynced.discard(entry.seq)

    def set_aside(self, entry: SpoolEntry, result: SendResult) -> None:
        """Move a refused batch to `rejected/` with a note, then drop the oldest set-aside ones past the bounds."""
        import json  # only here: nothing else on the agent's path imports json (~0.09 MB of RSS)

        target = self.rejected_dir / entry.path.name
        note = {"idempotency_key": entry.key, "points": entry.points, "reason": result.reason,
                "detail": result.detail, "rejected_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        with self._mutex:
            unsynced = entry.seq in self._unsynced
        try:
            target.with_suffix(".json").write_text(json.dumps(note, indent=1) + "\n")
            os.rename(entry.path, target)
            if unsynced:  # it stays, so it must survive a power loss too (rare: no cost on the common path)
                self._fsync_path(target)
                self._fsync_path(self.rejected_dir)
        except OSError as err:  # no room for the dead letter: it is lost, the spool must still move on
            log.error("could not set aside rejected batch %s: %s; dropped", entry.key, err)
            self.remove(entry)
            return
        with self._mutex:
            self._forget(entry)
            self._rejected.append(SpoolEntry(entry.seq, entry.key, entry.points, entry.size, target))
            self._rejected.sort()
            while self._rejected and (len(self._rejected) > self.max_rejected_batches
                                      or sum(e.size for e in self._rejected) > self.max_rejected_bytes):
                oldest = self._rejected.pop(0)
                oldest.path.unlink(missing_ok=True)
                oldest.path.with_suffix(".json").unlink(missing_ok=True)
                self.evicted_rejected_batches += 1
                self.evicted_rejected_points += oldest.points

    def drain(self, sender: Sender, *, start_before: float | None = None, deadline: float | None = None,
              cancel: threading.Event | None = None) -> DrainReport:
        """Send pending batches in order; stop at the first retryable failure (order is kept), once `cancel` is
        set, or when time is up (`time.monotonic()`): no send starts after `start_before`, and none runs past
        `deadline` (each send is bounded by what is left). A refused batch is set aside and the drain goes on.
        What is still pending at the end is fsynced (`sync`)."""
        report = DrainReport()
        for entry in self.entries():
            now = time.monotonic()
            remaining = None if deadline is None else deadline - now
            if ((cancel is not None and cancel.is_set()) or (remaining is not None and remaining <= 0)
                    or (start_before is not None and now >= start_before)):
                report.interrupted = True
                break
            try:
                payload = entry.path.read_bytes()
            except OSError as err:  # removed or damaged behind our back: skip it, keep the rest
                self.remove(entry)
                log.error("spooled batch %s unreadable, dropped: %s", entry.key, err)
                report.unreadable.append(entry)
                continue
            result = sender.send(payload, entry.key, remaining)
            if result.outcome in ("retry", "auth"):
                report.failure = result
                break
            if result.outcome == "ok":
                self.remove(entry)
                log.debug("exported batch %s (%d points)", entry.key, entry.points)
                report.sent_batches += 1
                report.sent_points += entry.points - result.rejected_points
                if result.rejected_points:
                    report.partial.append((entry, result))
            else:
                self.set_aside(entry, result)
                log.debug("receiver refused batch %s (%d points): %s; set aside in %s",
                          entry.key, entry.points, result.reason, self.rejected_dir)
                report.rejected.append((entry, result))
        self.sync()
        return report
