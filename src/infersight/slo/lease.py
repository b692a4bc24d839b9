"""One SLO engine at a time: a leader lease kept in the store, for several servers on one back end.

Only the holder evaluates, dispatches and delivers; the others follow (they reload the stored state
for their read API). The protocol is Kubernetes' leader election (client-go `leaderelection`), with
the record in `infersight_slo_lease` (`storage/sql/slo_lease.sql`) instead of a Lease object:

- a record is (term, holder, renewal). The holder renews every `renew_seconds` (a new renewal number);
- the holder leads while its last successful renewal *started* less than `deadline_seconds` ago, by
  its own clock. A renewal it cannot write (store down) does not end its term at once, the deadline does;
- another server takes over only when it has seen the record unchanged for `duration_seconds` by its
  own clock (never comparing clocks across servers), or the record says the lease was released. It
  claims the next term; the term's holder is its earliest claim (then the lowest holder id), the same
  for every reader, and a claimant leads only from its next tick, once concurrent claims are visible;
- `deadline_seconds` < `duration_seconds`: an old holder that stalled has stopped acting
  `duration - deadline` before anyone may take over (the margin for clock rates and read latency).

The engine's state is in the store, so a new holder loads it and carries on: the stored outbox and the
groups' last notifications keep a page from going out twice and a resolve from being lost. What the
lease cannot prevent is the at-least-once window of any notifier: a holder that dies after a receiver
took a notification and before storing that it was sent leaves it pending, and the next holder sends it
again (Alertmanager has the same window).
"""
from __future__ import annotations

import logging
import os
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from infersight.slo.store import LEASE
from infersight.storage.base import Storage, StorageError
from infersight.storage.literals import string_literal

log = logging.getLogger(__name__)

NAME = "slo-engine"
DURATION_SECONDS = 15.0
DEADLINE_SECONDS = 10.0
RENEW_SECONDS = 2.0
RELEASED = ""  # the holder of a released term: free to claim at once


def holder_id() -> str:
    """This process: host, pid and a random part (a restarted server is a new claimant)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


@dataclass(frozen=True)
class Record:
    term: int
    holder: str
    renewal: int
    claimed_at: float  # the holder's claim, by its clock: orders claims of one term


class LeaseTable:
    """The lease rows in the store (chDB or ClickHouse; on a cluster, one shard per lease name)."""

    def __init__(self, storage: Storage) -> None:
        self.storage = storage
        self.table = f"`{storage.database}`.`{LEASE}`"

    def current(self, name: str) -> Record | None:
        """The highest term's holder with its latest renewal, or None when the lease was never taken."""
        rows = self.storage.query(
            f"SELECT Term, Holder, Renewal, toUnixTimestamp64Milli(ClaimedAt) AS c FROM {self.table} FINAL "
            f"WHERE Name = {string_literal(name)} ORDER BY Term DESC, ClaimedAt, Holder LIMIT 1")
        if not rows:
            return None
        r = rows[0]
        return Record(int(r["Term"]), r["Holder"], int(r["Renewal"]), int(r["c"]) / 1000)

    def write(self, name: str, record: Record) -> None:
        self.storage.execute(
            f"INSERT INTO {self.table} (Name, Term, Holder, ClaimedAt, Renewal) VALUES ({string_literal(name)}, "
            f"{int(record.term)}, {string_literal(record.holder)}, fromUnixTimestamp64Milli(toInt64("
            f"{int(round(record.claimed_at * 1000))})), {int(record.renewal)})")


class Lease:
    """This server's side of the lease: `tick()` every loop cycle says whether it leads now.

    `clock` measures intervals only (monotonic by default); `wall` stamps claims (wall clock).
    """

    def __init__(self, table: LeaseTable, holder: str, name: str = NAME,
                 duration_seconds: float = DURATION_SECONDS, deadline_seconds: float = DEADLINE_SECONDS,
                 renew_seconds: float = RENEW_SECONDS, clock: Callable[[], float] = time.monotonic,
                 wall: Callable[[], float] = time.time) -> None:
        if not 0 < renew_seconds < deadline_seconds < duration_seconds:
            raise ValueError("lease: need 0 < renew_seconds < deadline_seconds < duration_seconds")
        if not holder:
            raise ValueError("lease: the holder id must not be empty")
        self.table, self.holder, self.name = table, holder, name
        self.duration, self.deadline, self.renew = duration_seconds, deadline_seconds, renew_seconds
        self.clock, self.wall = clock, wall
        self.observed: Record | None = None
        self.observed_at = clock()  # a lease seen for the first time is someone's until it stays unchanged
        self.renewed_at: float | None = None  # start of our last successful write of our record
        self.mine: Record | None = None  # our record in the current term, when we hold or claimed it

    def held(self, now: float | None = None) -> bool:
        """True while our last renewal (or winning claim) started less than `deadline_seconds` ago."""
        now = self.clock() if now is None else now
        return (self.mine is not None and self.renewed_at is not None and self.observed == self.mine
                and now - self.renewed_at < self.deadline)

    def tick(self) -> bool:
        """Read the record, renew or claim as due; True when this server leads until the next tick."""
        now = self.clock()
        try:
            rec = self.table.current(self.name)
        except StorageError as err:
            log.warning("SLO lease: cannot read the lease: %s", err)
            return self.held(now)
        if rec != self.observed:
            self.observed, self.observed_at = rec, now
        if rec is not None and rec.holder == self.holder:
            if self.mine is None or self.mine.term != rec.term:  # a claim we won (or a record of ours)
                self.mine, self.renewed_at = rec, None
            if self.renewed_at is None or now - self.renewed_at >= self.renew:
                self._write(Record(rec.term, self.holder, rec.renewal + 1, rec.claimed_at), now)
            return self.held(now)
        if self.mine is not None:
            log.warning("SLO lease: %s took term %d; this server (%s) stops evaluating",
                        rec.holder if rec else "nobody", rec.term if rec else 0, self.holder)
            self.mine, self.renewed_at = None, None
        if rec is None or rec.holder == RELEASED or now - self.observed_at >= self.duration:
            term = rec.term + 1 if rec else 1
            try:
                self.table.write(self.name, Record(term, self.holder, 0, self.wall()))
            except StorageError as err:
                log.warning("SLO lease: cannot claim term %d: %s", term, err)
            else:
                log.info("SLO lease: %s claims term %d (%s)", self.holder, term,
                         "free" if rec is None or rec.holder == RELEASED
                         else f"{rec.holder} stopped renewing {now - self.observed_at:.0f} s ago")
        return False

    def _write(self, rec: Record, now: float) -> None:
        try:
            self.table.write(self.name, rec)
        except StorageError as err:
            log.warning("SLO lease: cannot renew term %d: %s", rec.term, err)
            return
        self.mine = self.observed = rec
        self.renewed_at = now

    def release(self) -> None:
        """Hand the lease over at once (a server stopping cleanly): the next term is free to claim."""
        if self.mine is None:
            return
        term, self.mine, self.renewed_at = self.mine.term, None, None
        try:
            self.table.write(self.name, Record(term + 1, RELEASED, 0, self.wall()))
        except StorageError as err:
            log.warning("SLO lease: cannot release term %d (it expires by itself): %s", term, err)
