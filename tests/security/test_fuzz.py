"""Seeded fuzzing of OTLP bodies, protobuf and JSON, all three signals: no 5xx, no hang, no stall.

Bodies come from the OTLP example payloads (tests/fixtures/otlp) and from requests the OpenTelemetry
Python SDK encodes, mutated by byte flips, truncation, duplicated slices and fields, huge varints,
deep nesting and hostile JSON values. The decode-only pass runs every body through the decoder and
the row builders (down to the Arrow tables a flush would insert) and checks the shadow metrics
decoder against the standard one; the HTTP pass posts bodies to a real gateway with a real chDB
store. Fixed seeds: a failure names the body, and rerunning reproduces it.
"""
from __future__ import annotations

import asyncio
import base64
import functools
import gzip
import json
import random
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from google.protobuf import json_format
from google.protobuf.message import DecodeError

from infersight.config import ServerConfig
from infersight.gateway import otlp
from infersight.gateway.app import create_app
from infersight.gateway.rows import ROW_BUILDERS, AttrSets, to_arrow

OTLP_FIXTURES = Path(__file__).parents[1] / "fixtures" / "otlp"
FIXTURE_FILES = {"metrics": ["metrics.json"], "traces": ["trace.json"], "logs": ["logs.json", "events.json"]}
DECODE_BODIES = 10_000
HTTP_BODIES = 4_000
HTTP_CONCURRENCY = 16
# A hang detector, not a speed check: a loaded 2-core CI machine has taken over 5 s for one request.
REQUEST_SECONDS = 60.0
CLIENT_ERRORS = {200, 400, 413, 415}
DEEP = "\x00deep-"
NASTY_JSON = [None, -1, 2**63, 2**64, -(2**64), 10**30, 1.5, -1e400, 1e400, "", "x", "-1e400", "1e19",
              "NaN", "0" * 32, "AQID", True, [], {}, [None], {"": None}, "\ud800", "9" * 40]


def sdk_requests() -> dict[str, list[bytes]]:
    """Requests as the OpenTelemetry SDK encodes them (in memory, no network)."""
    from opentelemetry._logs import SeverityNumber
    from opentelemetry.exporter.otlp.proto.common._log_encoder import encode_logs
    from opentelemetry.exporter.otlp.proto.common.metrics_encoder import encode_metrics
    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.metrics.view import ExponentialBucketHistogramAggregation, View
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from opentelemetry.trace import Link, SpanKind

    resource = Resource.create({"service.name": "fuzz", "host.name": "node-1"})
    reader = InMemoryMetricReader()
    meters = MeterProvider(resource=resource, metric_readers=[reader], views=[
        View(instrument_name="tokens", aggregation=ExponentialBucketHistogramAggregation())])
    meter = meters.get_meter("fuzz.meter", "1.0")
    meter.create_counter("requests").add(3, {"route": "/a", "ok": True})
    meter.create_up_down_counter("inflight").add(-2, {"n": 1.5})
    meter.create_gauge("temperature", unit="Cel").set(71.5, {"gpu": "0"})
    meter.create_histogram("latency", unit="s").record(0.3, {"route": "/a"})
    meter.create_histogram("tokens").record(120, {"model": "m"})
    metrics = encode_metrics(reader.get_metrics_data()).SerializeToString()
    meters.shutdown()

    spans = InMemorySpanExporter()
    tracers = TracerProvider(resource=resource)
    tracers.add_span_processor(SimpleSpanProcessor(spans))
    tracer = tracers.get_tracer("fuzz.tracer")
    with tracer.start_as_current_span("parent", kind=SpanKind.SERVER, attributes={"a": [1, 2]}) as parent:
        parent.add_event("ev", {"k": "v"})
        with tracer.start_as_current_span("child", links=[Link(parent.get_span_context(), {"l": 1})]):
            pass
    records = InMemoryLogRecordExporter()
    loggers = LoggerProvider(resource=resource)
    loggers.add_log_record_processor(SimpleLogRecordProcessor(records))
    loggers.get_logger("fuzz.logger").emit(body={"msg": "hi", "n": [1, "x"]}, severity_number=SeverityNumber.WARN,
                                           attributes={"x": b"\x00\x01"})
    with tracer.start_as_current_span("in-span"):
        loggers.get_logger("fuzz.logger").emit(body="in a span")
    logs = encode_logs(records.get_finished_logs()).SerializeToString()
    loggers.shutdown()
    traces = encode_spans(spans.get_finished_spans()).SerializeToString()
    tracers.shutdown()
    return {"metrics": [metrics], "traces": [traces], "logs": [logs]}


def _ids_to_base64(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: base64.b64encode(bytes.fromhex(v)).decode() if k in ("traceId", "spanId", "parentSpanId")
                else _ids_to_base64(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_ids_to_base64(v) for v in node]
    return node


@functools.cache
def seeds() -> dict[str, dict[str, list[Any]]]:
    """Per signal: protobuf bodies and JSON documents (as Python objects, hex ids)."""
    out: dict[str, dict[str, list[Any]]] = {}
    sdk = sdk_requests()
    for signal, files in FIXTURE_FILES.items():
        docs = [json.loads((OTLP_FIXTURES / f).read_text()) for f in files]
        pbs = [json_format.ParseDict(_ids_to_base64(d), otlp.SIGNALS[signal].request()).SerializeToString()
               for d in docs]
        pbs += sdk[signal]
        for pb in sdk[signal]:  # the SDK's requests as OTLP JSON too (hex ids)
            msg = otlp.SIGNALS[signal].request.FromString(pb)
            docs.append(_hex_ids(json_format.MessageToDict(msg)))
        out[signal] = {"protobuf": pbs, "json": docs}
    return out


def _hex_ids(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: base64.b64decode(v).hex() if k in ("traceId", "spanId", "parentSpanId")
                else _hex_ids(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_hex_ids(v) for v in node]
    return node


def _varint(n: int) -> bytes:
    out = bytearray()
    while n > 0x7F:
        out.append(n & 0x7F | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _nested_attribute(depth: int) -> bytes:
    """A resource attribute (protobuf) whose value nests `depth` kvlists deep."""
    inner = b"\x0a\x01a\x12\x03\x0a\x01x"  # KeyValue{key: "a", value: {string_value: "x"}}
    for _ in range(depth):
        kvlist = b"\x0a" + _varint(len(inner)) + inner  # KeyValueList.values
        value = b"\x32" + _varint(len(kvlist)) + kvlist  # AnyValue.kvlist_value
        inner = b"\x0a\x01a\x12" + _varint(len(value)) + value
    resource = b"\x0a" + _varint(len(inner)) + inner  # Resource.attributes
    return b"\x0a" + _varint(len(resource)) + resource  # Resource{...} as field 1 of Resource*


def mutate_bytes(rng: random.Random, body: bytes) -> bytes:
    b = bytearray(body)
    for _ in range(rng.randint(1, 4)):
        op = rng.randrange(7)
        i = rng.randrange(len(b) + 1)
        if op == 0 and b:  # byte flip
            b[min(i, len(b) - 1)] ^= 1 << rng.randrange(8)
        elif op == 1 and b:  # random byte
            b[min(i, len(b) - 1)] = rng.randrange(256)
        elif op == 2:  # truncation
            del b[i:]
        elif op == 3 and b:  # a slice duplicated elsewhere (fields repeated)
            j = rng.randrange(len(b))
            b[i:i] = b[j:j + rng.randint(1, 64)]
        elif op == 4:  # huge or overlong varint
            b[i:i] = rng.choice([b"\xff" * 9 + b"\x01", b"\xff" * 10 + b"\x7f", b"\x80" * 11, _varint(2**64 - 1)])
        elif op == 5:  # deleted run
            del b[i:i + rng.randint(1, 16)]
        else:  # the whole message twice: a valid merge
            b.extend(bytes(b))
    return bytes(b[: 1 << 20])


def mutate_protobuf(rng: random.Random, signal: str, body: bytes) -> bytes:
    if rng.random() < 0.08:  # a resource attribute nested past (or near) the decoder's depth limit
        nested = _nested_attribute(rng.choice([20, 31, 32, 33, 60, 300]))
        body = b"\x0a" + _varint(len(nested)) + nested + body
        return body if rng.random() < 0.5 else mutate_bytes(rng, body)
    return mutate_bytes(rng, body)


def _nodes(node: Any, out: list[tuple[Any, Any]]) -> list[tuple[Any, Any]]:
    if isinstance(node, dict):
        for k in node:
            out.append((node, k))
            _nodes(node[k], out)
    elif isinstance(node, list):
        for i in range(len(node)):
            out.append((node, i))
            _nodes(node[i], out)
    return out


def mutate_json(rng: random.Random, doc: Any) -> bytes:
    doc = json.loads(json.dumps(doc))
    deep: list[tuple[str, int, int]] = []
    for _ in range(rng.randint(1, 3)):
        places = _nodes(doc, [])
        if not places:
            break
        parent, key = rng.choice(places)
        op = rng.randrange(6)
        if op == 0:
            parent[key] = rng.choice(NASTY_JSON)
        elif op == 1 and isinstance(parent, dict):
            del parent[key]
        elif op == 2:  # deep nesting, written into the text below
            deep.append((json.dumps(parent[key]), rng.choice([50, 200, 900, 5000]), rng.randrange(2)))
            parent[key] = f"{DEEP}{len(deep) - 1}"
        elif op == 3 and isinstance(parent, list):
            parent.extend(parent[:rng.randint(1, 3)])
        elif op == 4 and isinstance(parent[key], str):
            parent[key] = rng.choice(["0" * len(parent[key]), parent[key][:-1], parent[key].upper() + "g"])
        else:
            parent[key] = {"unknownField": parent[key]}
    text = json.dumps(doc)
    for i, (value, depth, kvlist) in enumerate(deep):
        opener, closer = ('{"kvlistValue":{"values":[{"key":"a","value":', "}]}}") if kvlist else ("[", "]")
        text = text.replace(json.dumps(f"{DEEP}{i}"), opener * depth + value + closer * depth)
    text = text.encode()
    if rng.random() < 0.2:  # text-level: duplicate keys, raw bytes, NaN, huge numbers
        pos = rng.randrange(len(text))
        text = text[:pos] + rng.choice([b'"a":1,"a":2,', b"\xff", b"NaN", b"1" * 5000, b"-1e400", b"\\ud800"]) \
            + text[pos:]
    if rng.random() < 0.1:
        text = mutate_bytes(rng, text)
    return text


def fuzz_bodies(seed: int, count: int) -> list[tuple[str, str, bytes]]:
    rng = random.Random(seed)
    base = seeds()
    out = []
    for _ in range(count):
        signal = rng.choice(list(base))
        if rng.random() < 0.5:
            out.append((signal, otlp.PROTOBUF, mutate_protobuf(rng, signal, rng.choice(base[signal]["protobuf"]))))
        else:
            out.append((signal, otlp.JSON, mutate_json(rng, rng.choice(base[signal]["json"]))))
    return out


def decode_and_build(signal: str, body: bytes, mt: str, sets: AttrSets) -> str:
    """What the gateway does with a body up to the Arrow tables of its flush: 'ok' or 'bad-request'."""
    try:
        result = ROW_BUILDERS[signal](otlp.decode(otlp.SIGNALS[signal], body, mt), sets)
    except (otlp.BadRequest, DecodeError):
        return "bad-request"
    for part in result.parts.values():
        to_arrow([part])
    return "ok"


def test_decode_fuzz_raises_only_client_errors():
    sets = AttrSets()
    outcomes: Counter[str] = Counter()
    diverged = []
    for n, (signal, mt, body) in enumerate(fuzz_bodies(seed=8, count=DECODE_BODIES)):
        t0 = time.monotonic()
        try:
            outcome = decode_and_build(signal, body, mt, sets)
        except Exception as err:  # noqa: BLE001 - any other exception would be a 500
            pytest.fail(f"body {n} ({signal}, {mt}) raised {err!r}: {body[:300]!r}")
        assert time.monotonic() - t0 < REQUEST_SECONDS, f"body {n} hung"
        outcomes[f"{mt}:{outcome}"] += 1
        if signal == "metrics" and mt == otlp.PROTOBUF:
            try:
                otlp.SIGNALS[signal].request.FromString(body)
                standard = "ok"
            except DecodeError:
                standard = "bad-request"
            if standard == "bad-request" and outcome == "ok":
                diverged.append(body)
    assert not diverged, f"{len(diverged)} bodies the standard decoder rejects were accepted: {diverged[0].hex()}"
    # Both outcomes occur for both encodings: the mutations neither only break nor only keep bodies.
    assert all(outcomes[f"{mt}:{o}"] > 100 for mt in (otlp.PROTOBUF, otlp.JSON) for o in ("ok", "bad-request")), \
        outcomes


@pytest.fixture
async def client(store):
    server = TestServer(create_app(ServerConfig(flush_interval_seconds=0.02), store))
    async with TestClient(server) as c:
        yield c


def _headers(rng: random.Random, mt: str) -> tuple[dict[str, str], bool]:
    r = rng.random()
    if r < 0.05:
        return {"Content-Type": rng.choice(["text/plain", "application/protobuf", ""])}, False
    if r < 0.15:
        return {"Content-Type": mt, "Content-Encoding": "gzip"}, True
    return {"Content-Type": mt}, False


@pytest.mark.timeout(400)
async def test_http_fuzz_answers_client_errors_and_keeps_serving(client, store):
    rng = random.Random(80)
    bodies = fuzz_bodies(seed=80, count=HTTP_BODIES)
    statuses: Counter[int] = Counter()
    slowest = 0.0
    sem = asyncio.Semaphore(HTTP_CONCURRENCY)

    async def post(n: int, signal: str, mt: str, body: bytes) -> None:
        nonlocal slowest
        headers, zipped = _headers(rng, mt)
        data = gzip.compress(body, compresslevel=1) if zipped else body
        if zipped and rng.random() < 0.3:
            data = data[: rng.randrange(len(data))]  # a truncated gzip stream
        async with sem:
            t0 = time.monotonic()
            resp = await asyncio.wait_for(client.post(f"/v1/{signal}", data=data, headers=headers),
                                          REQUEST_SECONDS)
            await resp.read()
            took = time.monotonic() - t0
        slowest = max(slowest, took)
        statuses[resp.status] += 1
        assert resp.status in CLIENT_ERRORS, f"body {n} ({signal}, {headers}) got {resp.status}: {body[:300]!r}"

    started = time.monotonic()
    await asyncio.gather(*(post(n, *b) for n, b in enumerate(bodies)))
    elapsed = time.monotonic() - started
    assert statuses[200] > 100 and statuses[400] > 100, statuses
    assert slowest < REQUEST_SECONDS
    # No stall: a normal request is acknowledged and stored right after the fuzzing.
    before = store.query(f"SELECT count() AS n FROM `{store.database}`.otel_logs")[0]["n"]
    doc = json.loads((OTLP_FIXTURES / "logs.json").read_text())
    resp = await client.post("/v1/logs", data=json.dumps(doc), headers={"Content-Type": otlp.JSON})
    assert resp.status == 200
    assert json.loads(await resp.read()) == {}
    after = store.query(f"SELECT count() AS n FROM `{store.database}`.otel_logs")[0]["n"]
    assert int(after) > int(before)
    assert (await client.get("/readyz")).status == 200
    print(f"http fuzz: {len(bodies)} bodies in {elapsed:.1f} s, slowest {slowest:.2f} s, {dict(statuses)}")
