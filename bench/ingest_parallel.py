"""Writer levers for a second core, at the chDB level (less noisy than bench/ingest.py's full server).

The same flushes (bench/ingest.py's requests, rows built by the gateway's code, untimed) are turned into
Arrow and inserted into the gauge and sum tables four ways, interleaved, medians of wall and CPU-seconds:
- serial: per flush, build every table's Arrow, then insert the tables one after the other (the writer);
- ahead: flush k+1's Arrow built in a second thread while flush k is inserted;
- tables: a flush's tables inserted at once, each on a chDB connection of its own;
- both: ahead + tables;
- two-conns: serial, but each table on its own connection (tells the connection's share from the threads').
chDB releases the GIL while it inserts (the calling thread uses ~0 CPU), so these can overlap. Pin it
(`taskset -c 0` vs `taskset -c 0,1`) to see what a second core gives. On the shared 2-core VM the
ratios moved between runs by more than the effects (tables: 1.2x to 2.0x serial wall on 2 cores, also
1.2x to 1.4x on one core, which the server end to end does not show): read several runs.
"""
from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.ingest import make_request


def cpu_seconds() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--requests", type=int, default=200)
    ap.add_argument("--per-flush", type=int, default=50, help="requests per flush (1,000 points each)")
    ap.add_argument("--reps", type=int, default=7)
    args = ap.parse_args()

    from chdb import session

    from infersight.gateway import otlp, rows
    from infersight.server.tables import all_ddl
    from infersight.storage.embedded import EmbeddedStorage
    from infersight.storage.schema import SchemaOptions, ensure_schema

    sets = rows.AttrSets()
    reqs = [rows.metrics_rows(otlp.decode(otlp.SIGNALS["metrics"], make_request(i), otlp.PROTOBUF), sets).parts
            for i in range(args.requests)]
    flushes = [reqs[i:i + args.per_flush] for i in range(0, len(reqs), args.per_flush)]
    data_dir = tempfile.mkdtemp(prefix="infersight-bench-parallel-")
    store = EmbeddedStorage(data_dir, "otel")
    ensure_schema(store, SchemaOptions("otel"), all_ddl())
    conns = [session.Session(str(store.data_dir)) for _ in range(2)]
    inserts, builder = ThreadPoolExecutor(2), ThreadPoolExecutor(1)

    def build(flush: list[dict[str, Any]]) -> dict[str, Any]:
        return {name: rows.to_arrow([p[name] for p in flush]) for name in sorted(flush[0])}

    def insert(conn: Any, name: str, table: Any) -> None:
        cols = ", ".join(f"`{c}`" for c in table.column_names)
        arrow_data = table  # noqa: F841 -- chDB resolves Python(name) in the calling frame
        conn.query(f"INSERT INTO otel.`{name}` ({cols}) SELECT {cols} FROM Python(arrow_data) "
                   f"SETTINGS insert_deduplication_token = '{time.time_ns()}-{name}'")

    def write(built: dict[str, Any], at_once: bool, spread: bool = False) -> None:
        if spread:
            for c, (n, t) in zip(conns, built.items(), strict=False):
                insert(c, n, t)
        elif at_once:
            for job in [inserts.submit(insert, c, n, t) for c, (n, t) in zip(conns, built.items(), strict=False)]:
                job.result()
        else:
            for n, t in built.items():
                insert(conns[0], n, t)

    def serial(at_once: bool = False) -> None:
        for flush in flushes:
            write(build(flush), at_once)

    def ahead(at_once: bool = False) -> None:
        nxt = builder.submit(build, flushes[0])
        for k in range(len(flushes)):
            built = nxt.result()
            if k + 1 < len(flushes):
                nxt = builder.submit(build, flushes[k + 1])
            write(built, at_once)

    def two_conns() -> None:
        for flush in flushes:
            write(build(flush), False, True)

    modes: dict[str, Callable[[], None]] = {"serial": serial, "ahead": ahead, "tables": lambda: serial(True),
                                            "both": lambda: ahead(True),
                                            "two-conns": two_conns}
    for fn in modes.values():
        fn()  # warm
    res: dict[str, list[tuple[float, float]]] = {m: [] for m in modes}
    for rep in range(args.reps):
        for m in (list(modes) if rep % 2 else list(modes)[::-1]):
            c0, w0 = cpu_seconds(), time.perf_counter()
            modes[m]()
            res[m].append((time.perf_counter() - w0, cpu_seconds() - c0))
    for c in conns:
        c.close()
    store.close()
    shutil.rmtree(data_dir, ignore_errors=True)

    points = args.requests * 1000
    print(f"{args.requests} requests x 1000 points, {args.per_flush} per flush, gauge + sum tables; "
          f"{len(os.sched_getaffinity(0))} cores (load {os.getloadavg()[0]:.1f}); medians of {args.reps}")
    base_wall = statistics.median(w for w, _ in res["serial"])
    base_cpu = statistics.median(c for _, c in res["serial"])
    for m, v in res.items():
        wall, cpu = statistics.median(w for w, _ in v), statistics.median(c for _, c in v)
        print(f"  {m:9}: {points / wall:9,.0f} points/s wall, {points / cpu:9,.0f} per CPU-second; "
              f"{base_wall / wall:.2f}x serial wall, {base_cpu / cpu:.2f}x its rate per CPU-second")
    return 0


if __name__ == "__main__":
    sys.exit(main())
