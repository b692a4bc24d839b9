"""Values as the OTel Collector ClickHouse exporter writes them, and attribute sets interned per generation.

Conventions mirror exporter/clickhouseexporter: attribute values via pcommon `Value.AsString()`
(bools `true`/`false`, doubles in ES6 style, bytes base64, maps and arrays as JSON), ids as lower
hex or '' when all zero, metric timestamps in seconds (`DateTime`), span/log timestamps in
nanoseconds.

Attribute lists are interned (as tuples of serialized KeyValues) into small ints, so a set is
stringified once however many points carry it. The ids refer to one `Generation`: resetting the
cache starts a new one, and parts still queued keep resolving their ids against their own.
"""
from __future__ import annotations

import base64
import math
from decimal import Decimal
from typing import Any

import numpy as np
import pyarrow as pa
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

from infersight.gateway.otlp import BadRequest, number_point, point_attribute

MAP = pa.map_(pa.string(), pa.string())
TS_NS = pa.timestamp("ns", tz="UTC")
NS = 1_000_000_000
MAX_U32 = 2**32 - 1
MAX_NS = 2**63 - 1  # DateTime64(9) and Arrow's timestamp[ns] stop here (year 2262)


# ---------------------------------------------------------------- values

def go_float(f: float) -> str:
    """strconv-style ES6 number formatting, as pcommon's float64AsString."""
    if math.isnan(f):
        return "json: unsupported value: NaN"
    if math.isinf(f):
        return "json: unsupported value: " + ("+Inf" if f > 0 else "-Inf")
    a = abs(f)
    if a != 0 and (a < 1e-6 or a >= 1e21):
        mant, exp = repr(f).split("e")
        sign = exp[0]
        return f"{mant}e{sign}{exp[1:].lstrip('0') or '0'}"
    s = format(Decimal(repr(f)), "f")
    if "." in s:
        s = s.rstrip("0").rstrip(".")
    return "0" if s == "-0" else s


def _json_str(s: str) -> str:
    out = []
    for ch in s:
        o = ord(ch)
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif ch in "<>&" or o < 0x20 or ch in "\u2028\u2029":
            out.append({"\n": "\\n", "\r": "\\r", "\t": "\\t"}.get(ch, f"\\u{o:04x}"))
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def _json_value(v: AnyValue) -> str:
    """Go encoding/json of pcommon's AsRaw(): sorted keys, no spaces, bytes as base64."""
    kind = v.WhichOneof("value")
    if kind == "string_value":
        return _json_str(v.string_value)
    if kind == "bool_value":
        return "true" if v.bool_value else "false"
    if kind == "int_value":
        return str(v.int_value)
    if kind == "double_value":
        f = v.double_value
        return "null" if math.isnan(f) or math.isinf(f) else go_float(f)
    if kind == "bytes_value":
        return _json_str(base64.b64encode(v.bytes_value).decode())
    if kind == "array_value":
        return "[" + ",".join(_json_value(x) for x in v.array_value.values) + "]"
    if kind == "kvlist_value":
        items = {kv.key: kv.value for kv in v.kvlist_value.values}
        return "{" + ",".join(f"{_json_str(k)}:{_json_value(items[k])}" for k in sorted(items)) + "}"
    return "null"


def as_string(v: AnyValue) -> str:
    """pcommon Value.AsString()."""
    kind = v.WhichOneof("value")
    if kind == "string_value":
        return v.string_value
    if kind is None:
        return ""
    if kind == "bool_value":
        return "true" if v.bool_value else "false"
    if kind == "int_value":
        return str(v.int_value)
    if kind == "double_value":
        return go_float(v.double_value)
    if kind == "bytes_value":
        return base64.b64encode(v.bytes_value).decode()
    return _json_value(v)


def hex_id(b: bytes) -> str:
    """An id as the exporter stores it: lower hex, '' when all zero."""
    return b.hex() if any(b) else ""


def optional_id(b: bytes, size: int, what: str) -> str:
    """An optional id: empty or all zero is none (''), any other length than `size` is an error."""
    if len(b) not in (0, size):
        raise BadRequest(f"{what} must be {size} bytes or empty, not {len(b)}")
    return hex_id(b)


def seconds(ns: list[int]) -> pa.Array:
    """Nanosecond timestamps as `DateTime` seconds (UInt32, saturated)."""
    a = np.asarray(ns, dtype=np.uint64) // NS
    return pa.array(np.minimum(a, MAX_U32).astype(np.uint32))


def nanos(ns: list[int]) -> pa.Array:
    """Nanosecond timestamps as `DateTime64(9)`."""
    return pa.array(ns, pa.uint64()).cast(pa.int64()).cast(TS_NS)


# ClickHouse column type (storage.tables) -> the Arrow type the rows are built as.
_ARROW = {"String": pa.string(), "LowCardinality(String)": pa.string(), "UInt8": pa.uint8(), "UInt32": pa.uint32(),
          "UInt64": pa.uint64(), "Int32": pa.int32(), "Float64": pa.float64(), "Bool": pa.bool_(),
          "DateTime": pa.uint32(), "DateTime64(9)": TS_NS, "Map(LowCardinality(String), String)": MAP}


def arrow_type(ch: str) -> pa.DataType:
    """The Arrow type of a declared column (`DateTime` as UInt32 seconds, as `seconds` builds it)."""
    if ch.startswith("Array(") and ch.endswith(")"):
        return pa.list_(arrow_type(ch[len("Array("):-1]))
    return _ARROW[ch]


# ---------------------------------------------------------------- attribute sets

class Generation:
    """The stringified sets that ids of one cache generation refer to (keys and values per id)."""

    __slots__ = ("keys", "values")

    def __init__(self) -> None:
        self.keys: list[tuple[str, ...]] = [()]
        self.values: list[tuple[str, ...]] = [()]


class AttrSets:
    """Interns attribute lists (as tuples of serialized KeyValues) → small ints of one `Generation`.

    Stringifying is done once per distinct set; the table is reset when it holds more than `limit`
    sets or about `max_bytes` (the serialized attributes plus their strings, counted by `held_bytes`),
    only between requests, never while one is being built: what it holds is bounded by `max_bytes`
    plus one request's attributes (plus generations still referenced by queued rows).
    """

    SET_OVERHEAD_BYTES = 200  # dict entry, tuples and list slots of one set, roughly

    def __init__(self, limit: int = 200_000, max_bytes: int = 64 * 1024 * 1024) -> None:
        self.limit = limit
        self.max_bytes = max_bytes
        self.reset()

    def reset(self) -> None:
        """Start a new generation; queued parts keep resolving their ids against the old one."""
        self.ids: dict[tuple[bytes, ...], int] = {(): 0}
        # The rest of a gauge or sum point after its fixed-width fields -> set id << 32 | flags.
        self.rests: dict[bytes, int] = {}
        self.generation = Generation()
        self.held_bytes = 0

    def maybe_reset(self) -> None:
        """Reset when over the bounds; called before each request, never during one."""
        if len(self.generation.keys) > self.limit or self.held_bytes > self.max_bytes:
            self.reset()

    def intern(self, raw: tuple[bytes, ...], parse: Any = KeyValue.FromString) -> int:
        """Id of a set given as serialized KeyValues (DecodeError for a malformed attribute)."""
        i = self.ids.get(raw)
        if i is not None:
            return i
        d: dict[str, str] = {}
        for b in raw:
            kv = parse(b)  # DecodeError propagates: a malformed attribute
            d[kv.key] = as_string(kv.value)
        gen = self.generation
        i = len(gen.keys)
        self.ids[raw] = i
        gen.keys.append(tuple(d))
        gen.values.append(tuple(d.values()))
        self.held_bytes += (self.SET_OVERHEAD_BYTES + sum(len(b) for b in raw)
                            + sum(len(k) + len(v) for k, v in d.items()))
        return i

    def rest(self, raw: bytes, rest: bytes) -> int | None:
        """`rest`'s set id << 32 | flags for a point `raw` ending in it; None when its fields are not
        just attributes and flags (BadRequest or DecodeError when the point is invalid, as `ids_of_raw`)."""
        p = number_point(raw, rest)
        if p is None or p.exemplars:
            return None
        code = self.intern(tuple(p.attributes), point_attribute) << 32 | p.flags
        self.rests[rest] = code
        self.held_bytes += self.SET_OVERHEAD_BYTES + len(rest)
        return code

    def of(self, attrs: Any) -> int:
        """Id of a repeated KeyValue field (real message class)."""
        return self.intern(tuple(kv.SerializeToString() for kv in attrs))

    def ids_of_raw(self, raws: Any) -> list[int]:
        """Ids of data points' raw attributes (shadow class), validated as the standard decoder would."""
        get, intern = self.ids.get, self.intern
        return [get(t) or intern(t, point_attribute) for t in raws]


def map_array(gen: Generation, ids: Any) -> pa.Array:
    """Arrow Map column for a sequence of set ids (built once per distinct set, then take)."""
    ids = np.asarray(ids, dtype=np.int64)
    if len(ids) == 0:
        return pa.array([], MAP)
    uniq, inverse = np.unique(ids, return_inverse=True)
    keys: list[str] = []
    vals: list[str] = []
    offsets = [0]
    for u in uniq.tolist():
        keys.extend(gen.keys[u])
        vals.extend(gen.values[u])
        offsets.append(len(keys))
    m = pa.MapArray.from_arrays(pa.array(offsets, pa.int32()), pa.array(keys, pa.string()),
                                pa.array(vals, pa.string()))
    return m.take(pa.array(inverse))


def column(typ: pa.DataType, values: list[Any], gen: Generation) -> pa.Array:
    """One Arrow column of `typ` from Python values (set ids for maps, nanoseconds for timestamps)."""
    if typ == MAP:
        return map_array(gen, values)
    if typ == TS_NS:
        return nanos(values)
    return pa.array(values, typ)


def resource(sets: AttrSets, res: Any, schema_url: str) -> dict[str, Any]:
    """The resource's columns, shared by every row of it."""
    service = ""
    for kv in res.attributes:
        if kv.key == "service.name":
            service = kv.value.string_value
    return {"ResourceAttributes": sets.of(res.attributes), "ResourceSchemaUrl": schema_url,
            "ServiceName": service}
