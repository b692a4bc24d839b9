"""The per-minute accelerator/node rollup (`infersight_accelerators_1m`) against the raw gauges it replaces.

Real collectors (the NVML replay double of the H200 capture with an injected XID, a neuron-monitor document,
the host collector on this machine, the agent's collector-up gauge) are exported as the agent does and
stored through the real gateway into chDB. The web UI's own SQL (`static/sql.js`, run by node) is then read
twice over the same range, from the rollup and from the raw tables (`?source=raw`), and both must agree;
the rollup's means are also checked against the mean of the points sent.
"""
from __future__ import annotations

import json
import math
import shutil
import subprocess
from pathlib import Path

import pytest
from aiohttp import web

from infersight import accelerator_rollups
from infersight.config import parse_config
from infersight.gateway.app import create_app

NODE = shutil.which("node")
SQL_JS = Path(__file__).resolve().parent.parent / "src" / "infersight" / "webui" / "static" / "sql.js"
SECONDS_AGO = (1500, 900, 300)  # three collections, minutes apart, inside the range


def sql_of(calls: list[tuple[str, list]], source: str) -> list[str]:
    """SQL from sql.js: each (function, args), `r` standing for rangeOf('6h', {source})."""
    if NODE is None:
        pytest.skip("node is not installed (Debian package 'nodejs')")
    script = (f"import * as s from {json.dumps(SQL_JS.as_uri())};\n"
              f"const r = s.rangeOf('6h', {{source: {json.dumps(source)}}});\n"
              f"const calls = {json.dumps(calls)};\n"
              "console.log(JSON.stringify(calls.map(([f, args]) => s[f](...args.map((a) => a === 'R' ? r : a)))));")
    out = subprocess.run([NODE, "--input-type=module", "-e", script], capture_output=True, text=True, timeout=30,
                         check=True)
    return json.loads(out.stdout)


async def fill(store, port: int) -> dict:
    """Collections of every kind through the gateway; the points sent, by collector."""
    import psutil

    from infersight.agent.selfmetrics import COLLECTOR_UP
    from infersight.collectors.host import HostCollector
    from infersight.collectors.neuron import NeuronCollector
    from infersight.collectors.nvml import NvmlCollector
    from infersight.testing.nvml_replay import ReplayNvml, load_capture
    from test_dashboards_e2e import RESOURCE, post_points

    cfg = parse_config({"server": {"listen": f"127.0.0.1:{port}", "flush_interval_seconds": 0.05,
                                   "storage": {"database": store.database}}})
    runner = web.AppRunner(create_app(cfg.server, store))
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    url = f"http://127.0.0.1:{port}"
    sent: dict[str, list] = {"nvml": [], "neuron": [], "host": []}
    stored = 0
    try:
        replay = ReplayNvml(load_capture())
        nvml = NvmlCollector(replay, clock=replay.clock, proc_root=Path("/nonexistent"))
        host = HostCollector(psutil, process_names=[], exclude_disks=("loop*", "ram*", "zram*"))
        host.collect()
        neuron = NeuronCollector(["unused"])
        neuron.close()
        doc = Path(__file__).parent / "fixtures" / "neuron" / "neuron-monitor_trn1.2xlarge_wandb-test.json"
        trn = {**RESOURCE, "host.name": "trn-node-1", "cloud.provider": "aws", "cloud.region": "us-west-2"}
        for i, ago in enumerate(SECONDS_AGO):
            replay.seek(60 + i)
            if i == 2:
                replay.inject_xid(0, 79)
            points = list(nvml.collect())
            sent["nvml"] += points
            stored += len(points)
            await post_points(url, points, store, stored, seconds_ago=ago)
            hp = [*host.collect(), COLLECTOR_UP.point(1.0, {"collector.name": "host", "collector.type": "host"})]
            sent["host"] += hp
            stored += len(hp)
            await post_points(url, hp, store, stored, RESOURCE, "infersight.collectors.host", seconds_ago=ago)
            neuron.feed(doc.read_text())
            np_ = list(neuron.collect())
            sent["neuron"] += np_
            stored += len(np_)
            await post_points(url, np_, store, stored, trn, "infersight.collectors.neuron", seconds_ago=ago)
    finally:
        await runner.cleanup()
    return sent


def rows_of(store, sql: str) -> list[dict]:
    return store.query(sql)


def close(a, b) -> bool:
    if isinstance(a, float | int) and isinstance(b, float | int):
        if math.isnan(a) and math.isnan(b):
            return True
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)
    if isinstance(a, list) and isinstance(b, list):
        return sorted(map(str, a)) == sorted(map(str, b))
    return a == b


def _order(rows: list[dict]) -> list[dict]:
    """Rows in one order whatever the query's ties: by their non-float values."""
    return sorted(rows, key=lambda r: [str(r[k]) for k in sorted(r) if not isinstance(r[k], float)])


def same(raw: list[dict], rolled: list[dict], skip: tuple[str, ...] = ()) -> None:
    assert len(raw) == len(rolled) and raw, (raw, rolled)
    for x, y in zip(_order(raw), _order(rolled), strict=True):
        bad = {k: (x[k], y.get(k)) for k in x if k not in skip and not close(x[k], y.get(k))}
        assert not bad, (x, y)


async def test_views_read_the_same_from_the_rollup_as_from_the_raw_gauges(store, port):
    sent = await fill(store, port)
    db = store.database
    calls = [
        ("nodesSQL", [db, "R", {}]),
        ("acceleratorSQL", [db, "R", {}, 0]),
        ("acceleratorSQL", [db, "R", {}, 900]),
        ("hostSQL", [db, "R", {}, 0]),
        ("hostSQL", [db, "R", {"host": "gpu-node-7"}, 300]),
        ("deviceSQL", [db, "R", "gpu-node-7", 300]),
        ("deviceSQL", [db, "R", "trn-node-1", 300]),
        ("deviceHealthSQL", [db, "R", "gpu-node-7"]),
    ]
    raw, rolled = sql_of(calls, "raw"), sql_of(calls, "")
    assert all("otel_metrics" in q and accelerator_rollups.NAME not in q for q in raw)
    assert all(accelerator_rollups.NAME in q and "otel_metrics" not in q for q in rolled)
    results = {}
    for (name, args), a, b in zip(calls, raw, rolled, strict=True):
        results[(name, json.dumps(args[2:]))] = (rows_of(store, a), rows_of(store, b))
    for a, b in results.values():
        same(a, b)

    # The rollup's means are the means of the points sent (a reference computed here).
    nodes = {n["host"]: n for n in results[("nodesSQL", "[{}]")][1]}
    assert nodes["gpu-node-7"]["cloud"] == "gcp"  # its host collector and collector-up gauge
    accel = {a["host"]: a for a in results[("acceleratorSQL", "[{}, 0]")][1]}
    util = [p.value for p in sent["nvml"]
            if p.name == "hw.gpu.utilization" and p.attributes["hw.gpu.task"] == "general"]
    assert math.isclose(accel["gpu-node-7"]["util"], sum(util) / len(util))
    cores = [p for p in sent["neuron"] if p.name == "infersight.neuron.core.utilization"]
    assert math.isclose(accel["trn-node-1"]["util"], sum(p.value for p in cores) / len(cores))
    assert accel["trn-node-1"]["devices"] == len({p.attributes["infersight.neuron.core"] for p in cores})
    power = [p.value for p in sent["nvml"] if p.name == "hw.power"]
    dev = results[("deviceSQL", '["gpu-node-7", 300]')][1]
    got = [r for r in dev if r["metric"] == "hw.power"]
    assert len(got) == len(SECONDS_AGO)  # one 5-minute bucket per collection
    assert math.isclose(sum(r["v"] for r in got) / len(got), sum(power) / len(power))
    (health,) = results[("deviceHealthSQL", '["gpu-node-7"]')][1]
    assert (health["state"], health["xid"], list(health["codes"])) == ("failed", 1, ["79"])


async def test_rollup_leaves_out_non_finite_values_and_counts_split_minutes(store, port):
    """NaN/inf gauges never reach the sums; a minute sent in two inserts reads as one."""
    from infersight.collectors.base import Point
    from test_dashboards_e2e import post_points

    cfg = parse_config({"server": {"listen": f"127.0.0.1:{port}", "flush_interval_seconds": 0.05,
                                   "storage": {"database": store.database}}})
    runner = web.AppRunner(create_app(cfg.server, store))
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    url = f"http://127.0.0.1:{port}"
    attrs = {"hw.id": "gpu0", "hw.type": "gpu", "hw.gpu.task": "general"}
    try:
        await post_points(url, [Point("hw.gpu.utilization", "gauge", 0.5, "1", attrs)], store, 1,
                          seconds_ago=120)
        await post_points(url, [Point("hw.gpu.utilization", "gauge", math.nan, "1", attrs),
                                Point("hw.gpu.utilization", "gauge", 0.7, "1", attrs)],
                          store, 3, seconds_ago=120)
    finally:
        await runner.cleanup()
    rows = store.query(f"SELECT sum(UtilSum) AS s, sum(UtilCount) AS n, count() AS parts FROM "
                       f"`{store.database}`.{accelerator_rollups.NAME} WHERE Device = 'gpu0'")
    assert (rows[0]["s"], rows[0]["n"]) == (pytest.approx(1.2), 2) and rows[0]["parts"] >= 2
