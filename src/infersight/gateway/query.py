"""POST /api/v1/query: one read-only statement over the telemetry database, checked on the parsed query.

`readonly=1` alone is not a sandbox: it blocks the `file` *table* function but not the scalar
`file()`, and chDB is clickhouse-local, with no user-files restriction. So the query is parsed by
the store's own parser (`parseQueryToJSON`, the one that then runs it: case, backticks, comments,
escapes and CTEs are already resolved in its AST) and every node is checked against allow-lists:
- functions: the categories of `system.functions` that only compute on their arguments (arithmetic,
  dates, strings, arrays, JSON, maps, aggregates and their combinators, window functions, ...) and a
  few named ones; nothing that reads files, the network, the environment, settings or the server;
- tables: the telemetry database, a few metadata-free system tables and `system.columns`, CTEs;
- table functions: number/row generators only;
- no SETTINGS, FORMAT, INTO OUTFILE, query parameters or anything but one SELECT, with four read-only
  forms besides: `DESCRIBE t`, `SHOW TABLES [FROM db] [LIKE p]` and `EXISTS [TABLE] t` are rewritten
  into SELECTs over `system.columns` of the telemetry database (then checked like any SELECT), and
  `EXPLAIN [SYNTAX|AST|PLAN|PIPELINE|ESTIMATE|QUERY TREE] <SELECT>` runs when its SELECT passes the
  same check (no EXPLAIN settings).
The server then runs it with `readonly=1` and bounds on time, memory and result size.
"""
from __future__ import annotations

import asyncio
import json
import re
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from infersight.config import QueryApiConfig
from infersight.storage.base import DataError, LimitExceeded, QueryError, Storage, StorageError, Timeout
from infersight.storage.errors import code_of
from infersight.storage.literals import string_literal

# Categories of system.functions whose functions compute only on their arguments.
SAFE_CATEGORIES = frozenset((
    "Aggregate Functions", "Arithmetic", "Arrays", "Bit", "Bitmap", "Comparison", "Conditional", "Dates and Times",
    "Distance", "Encoding", "Encryption", "Financial", "Geo", "Geo Polygon", "Hash", "IP Address", "JSON",
    "Logical", "Map", "Mathematical", "Null", "NumericIndexedVector", "QBit", "Random Number", "Rounding",
    "String", "String Replacement", "String Search", "String Splitting", "Time Series", "Time Window", "Tuple",
    "Type Conversion", "URL", "UUID",
))
# From the "Other" category: pure functions of their arguments (not hostName, getSetting, file, sleep, ...).
SAFE_OTHER = frozenset((
    "bar", "blockNumber", "blockSize", "byteSize", "countDigits", "currentDatabase", "defaultValueOfArgumentType",
    "defaultValueOfTypeName", "digits", "dumpColumnStructure", "errorCodeToName", "finalizeAggregation",
    "formatQuery", "formatQueryOrNull", "formatQuerySingleLine", "formatQuerySingleLineOrNull",
    "formatReadableDecimalSize", "formatReadableQuantity", "formatReadableSize", "formatReadableTimeDelta",
    "getSizeOfEnumType", "getSubcolumn", "identity", "ignore", "indexHint", "initializeAggregation",
    "isConstant", "isDecimalOverflow", "MACNumToString", "MACStringToNum", "MACStringToOUI", "materialize",
    "minSampleSizeContinuous", "minSampleSizeConversion", "neighbor", "normalizeQuery", "normalizeQueryKeepNames",
    "normalizedQueryHash", "normalizedQueryHashKeepNames", "parseISO8601Duration", "parseReadableSize",
    "parseReadableSizeOrNull", "parseReadableSizeOrZero", "parseTimeDelta", "rowNumberInAllBlocks",
    "rowNumberInBlock", "runningAccumulate", "runningDifference", "runningDifferenceStartingWithFirstValue",
    "throwIf", "toColumnTypeName", "toTypeName", "transform", "variantElement", "variantType", "visibleWidth",
))
AST_FUNCTIONS = frozenset(("lambda",))  # parser nodes that are not in system.functions
TABLE_FUNCTIONS = frozenset(("numbers", "numbers_mt", "zeros", "zeros_mt", "generate_series", "generateSeries",
                             "values"))
SYSTEM_TABLES = frozenset(("one", "numbers", "numbers_mt", "zeros", "zeros_mt", "columns", "functions",
                           "aggregate_function_combinators", "data_type_families", "time_zones"))
IN_FUNCTIONS = frozenset(("in", "notIn", "globalIn", "globalNotIn", "nullIn", "notNullIn", "globalNullIn",
                          "globalNotNullIn"))
NODE_TYPES = frozenset((
    "SelectWithUnionQuery", "SelectIntersectExceptQuery", "SelectQuery", "ExpressionList", "Subquery",
    "TablesInSelectQuery", "TablesInSelectQueryElement", "TableExpression", "TableIdentifier", "TableJoin",
    "ArrayJoin", "Identifier", "Literal", "Function", "Asterisk", "QualifiedAsterisk", "ColumnsRegexpMatcher",
    "ColumnsListMatcher", "QualifiedColumnsRegexpMatcher", "QualifiedColumnsListMatcher", "ColumnsTransformerList",
    "ColumnsApplyTransformer", "ColumnsExceptTransformer", "ColumnsReplaceTransformer",
    "ColumnsReplaceTransformerReplacement", "OrderByElement", "WithElement", "WindowDefinition",
    "WindowListElement", "InterpolateElement", "SampleRatio",
))
REFUSED_NODES = {
    "SetQuery": "SETTINGS clauses are not allowed: the server sets the query limits (server.query.*)",
    "QueryParameter": "query parameters ({name:Type}) are not supported",
}
RETRY_BUSY_SECONDS = 1
READ_ONLY = "only read-only statements are allowed (SELECT, DESCRIBE, SHOW TABLES, EXISTS, EXPLAIN SELECT)"
# A statement starting with one of these is refused with READ_ONLY before it is parsed.
WRITE_WORDS = frozenset((
    "ALTER", "ATTACH", "BACKUP", "BEGIN", "CHECK", "COMMIT", "CREATE", "DELETE", "DETACH", "DROP", "EXCHANGE",
    "GRANT", "INSERT", "KILL", "MOVE", "OPTIMIZE", "RENAME", "REPLACE", "RESTORE", "REVOKE", "ROLLBACK", "SET",
    "SYSTEM", "TRUNCATE", "UNDROP", "UPDATE", "USE",
))
EXPLAIN_KINDS = frozenset(("EXPLAIN", "EXPLAIN SYNTAX", "EXPLAIN AST", "EXPLAIN PLAN", "EXPLAIN PIPELINE",
                           "EXPLAIN ESTIMATE", "EXPLAIN QUERY TREE"))
_IDENT = r"(?:[A-Za-z_][A-Za-z0-9_]*|`[^`\\]+`)"
_DESCRIBE = re.compile(rf"(?:DESCRIBE|DESC)(?:\s+TABLE)?\s+(?:({_IDENT})\s*\.\s*)?({_IDENT})", re.I)
_EXISTS = re.compile(rf"EXISTS(?:\s+TABLE)?\s+(?:({_IDENT})\s*\.\s*)?({_IDENT})", re.I)
_FIRST_WORD = re.compile(r"[A-Za-z]+")


class Refused(QueryError):
    """The query parses but reaches something the query API does not allow."""


class ResultTooLarge(LimitExceeded):
    """The result is over server.query.max_result_bytes."""


@dataclass(frozen=True)
class Allowed:
    """Function names the query API may call, from the store's own `system.functions`."""

    exact: frozenset[str]
    folded: frozenset[str]  # case-insensitive names, lower-cased
    aggregates: frozenset[str]
    combinators: tuple[str, ...]  # longest first

    @classmethod
    def load(cls, storage: Storage) -> Allowed:
        rows = storage.query("SELECT name, is_aggregate, case_insensitive, alias_to, categories "
                             "FROM system.functions WHERE origin = 'System'")
        category = {r["name"]: r["categories"] for r in rows if not r["alias_to"]}

        def safe(r: dict[str, Any]) -> bool:
            target = r["alias_to"] or r["name"]
            return category.get(target) in SAFE_CATEGORIES or target in SAFE_OTHER

        allowed = [r for r in rows if safe(r)]
        combinators = [r["name"] for r in storage.query("SELECT name FROM system.aggregate_function_combinators")]
        return cls(exact=frozenset(r["name"] for r in allowed),
                   folded=frozenset(r["name"].lower() for r in allowed if int(r["case_insensitive"])),
                   aggregates=frozenset(r["name"] for r in allowed if int(r["is_aggregate"])),
                   combinators=tuple(sorted(combinators, key=len, reverse=True)))

    def function(self, name: str) -> bool:
        return name in AST_FUNCTIONS or name in self.exact or name.lower() in self.folded or self._combined(name)

    def _combined(self, name: str) -> bool:
        """An aggregate with combinators (sumIf, uniqArrayMergeState, quantilesTDigestForEach)."""
        for suffix in self.combinators:
            if name.endswith(suffix) and len(name) > len(suffix):
                base = name[: -len(suffix)]
                if base in self.aggregates or self._combined(base):
                    return True
        return False


def _children(node: Any) -> Iterator[Any]:
    if isinstance(node, list):
        yield from node
    elif isinstance(node, dict):
        for key, value in node.items():
            if isinstance(value, dict | list) and not (node.get("type") == "Literal" and key == "value"):
                yield value


def _table(parts: list[str] | None, name: str, ctes: frozenset[str], database: str) -> None:
    if parts is None:  # unqualified: a CTE, or a table of the session's current database
        if name in ctes:
            return
        raise Refused(f"table {name!r}: name its database, e.g. `{database}`.`{name}`")
    db, table = parts[0], ".".join(parts[1:])
    if db == database or (db == "system" and table in SYSTEM_TABLES):
        return
    raise Refused(f"table {db}.{table} is not allowed: the query API reads the `{database}` database "
                  f"and system.{{{', '.join(sorted(SYSTEM_TABLES))}}}")


def check(ast: dict[str, Any], allowed: Allowed, database: str) -> None:
    """Raise Refused unless every node of the parsed SELECT is allowed (iterative: ASTs nest deeply)."""
    stack: list[tuple[Any, frozenset[str]]] = [(ast, frozenset())]
    while stack:
        node, ctes = stack.pop()
        if isinstance(node, list):
            stack.extend((child, ctes) for child in node if isinstance(child, dict | list))
            continue
        kind = node.get("type")
        if kind is None:  # a plain container (e.g. a window frame)
            stack.extend((child, ctes) for child in _children(node))
            continue
        if kind in REFUSED_NODES:
            raise Refused(REFUSED_NODES[kind])
        if kind not in NODE_TYPES:
            raise Refused(f"{kind} is not allowed: the query API runs one SELECT")
        if kind == "SelectQuery":
            with_list = (node.get("with") or {}).get("children", [])
            ctes = ctes | {w["name"] for w in with_list if w.get("type") == "WithElement"}
        elif kind == "TableExpression":
            if "database_and_table_name" in node:
                t = node["database_and_table_name"]
                _table(t.get("name_parts"), t["name"], ctes, database)
            if "table_function" in node:
                fn = node["table_function"]
                if fn.get("name") not in TABLE_FUNCTIONS:
                    raise Refused(f"table function {fn.get('name')} is not allowed "
                                  f"(allowed: {', '.join(sorted(TABLE_FUNCTIONS))})")
                stack.append((fn.get("arguments") or [], ctes))
            stack.extend((node[k], ctes) for k in ("subquery", "sample_size", "sample_offset") if k in node)
            continue
        elif kind == "Function":
            name = node.get("name", "")
            if not allowed.function(name):
                raise Refused(f"function {name} is unknown or not allowed in the query API")
            args = (node.get("arguments") or {}).get("children", [])
            if name in IN_FUNCTIONS and len(args) == 2 and args[1].get("type") == "Identifier":
                _table(args[1].get("name_parts"), args[1]["name"], ctes, database)  # `x IN db.table`
        elif kind == "ColumnsApplyTransformer" and not allowed.function(node.get("func_name", "lambda")):
            raise Refused(f"function {node['func_name']} is unknown or not allowed in the query API")
        stack.extend((child, ctes) for child in _children(node))


def _inner(wrapped: dict[str, Any]) -> dict[str, Any]:
    """The user's query inside the parsed wrapper; Refused if it did not stay inside the subquery."""
    try:
        (outer,) = wrapped["list_of_selects"]["children"]
        if set(outer) != {"type", "select", "tables", "limit_length"}:
            raise ValueError
        (element,) = outer["tables"]["children"]
        (inner,) = element["table_expression"]["subquery"]["children"]
        return inner
    except (KeyError, ValueError) as err:
        raise Refused("query does not parse as one SELECT") from err


def _plain(top: dict[str, Any]) -> None:
    """Refused if the statement asks for another output than the API's JSON."""
    if "format_ast" in top:
        raise Refused("FORMAT clauses are not allowed: the query API answers JSON")
    if "out_file" in top:
        raise Refused("INTO OUTFILE is not allowed")


def wrap(sql: str, max_rows: int) -> str:
    """The statement that runs: the query as a subquery, one row past the limit to tell truncation."""
    return f"SELECT * FROM (\n{sql}\n) LIMIT {int(max_rows) + 1}"


class QueryApi:
    """The handler, with its allow-list (loaded once from the store) and a cap on running queries.

    Queries run on a pool of their own and, on the embedded store, on read connections of their
    own, so they never hold up an OTLP acknowledgement or /readyz; more than
    `max_concurrent_queries` at once are answered 429.
    """

    def __init__(self, cfg: QueryApiConfig, storage: Storage) -> None:
        self.cfg = cfg
        self.storage = storage
        self._pool = ThreadPoolExecutor(cfg.max_concurrent_queries, thread_name_prefix="infersight-query")
        self._running = 0
        self._allowed: Allowed | None = None
        self._allowed_lock = threading.Lock()

    def allowed(self) -> Allowed:
        with self._allowed_lock:
            if self._allowed is None:
                self._allowed = Allowed.load(self.storage)
            return self._allowed

    def _parse(self, sql: str) -> dict[str, Any]:
        try:
            rows = self.storage.query(f"SELECT parseQueryToJSON({string_literal(sql)}) AS ast")
        except QueryError as err:  # the parser's message, without the parseQueryToJSON call around it
            text = str(err)
            if "not supported by parseQueryToJSON" in text or "does not support JSON serialization" in text:
                raise Refused(READ_ONLY) from None
            head, _, tail = text.partition(": In scope SELECT parseQueryToJSON(")
            code = re.search(r"\(([A-Z_]+)\)\s*$", tail)
            raise QueryError(head + (f" ({code.group(1)})" if code else "")) from None
        try:
            return json.loads(rows[0]["ast"])
        except RecursionError:
            raise Refused("query nested too deeply") from None

    def prepare(self, text: str) -> str:
        """The checked statement to run for `text`, or Refused / QueryError."""
        sql = text.strip().rstrip(";").strip()
        if not sql:
            raise QueryError("empty query")
        if any(ord(c) < 32 and c not in "\t\n\r" for c in sql):
            raise Refused("query contains control characters")
        first = _FIRST_WORD.match(sql)
        word = first.group(0).upper() if first else ""
        if word in WRITE_WORDS:
            raise Refused(f"{READ_ONLY}: got {word}")
        if word in ("DESCRIBE", "DESC", "EXISTS"):
            return self.prepare(self._metadata_select(sql, word))
        top = self._parse(sql)  # the real parser: syntax errors and multi-statements fail here
        if top.get("type") == "ShowTablesQuery":
            return self.prepare(self._show_tables_select(top))
        if top.get("type") == "ExplainQuery":
            return self._explain(sql, top)
        if top.get("type") != "SelectWithUnionQuery":
            raise Refused(f"{READ_ONLY} (got {top.get('type')})")
        _plain(top)
        wrapped = wrap(sql, self.cfg.max_rows)
        check(_inner(self._parse(wrapped)), self.allowed(), self.storage.database)
        return wrapped

    def _metadata_select(self, sql: str, word: str) -> str:
        """`DESCRIBE t` / `EXISTS [TABLE] t` as a SELECT over system.columns (t: a table the API may read)."""
        m = (_EXISTS if word == "EXISTS" else _DESCRIBE).fullmatch(sql)
        if m is None:
            raise Refused(f"{word} takes one table name: {word} [TABLE] [db.]table (no subqueries or functions)")
        db = (m.group(1) or self.storage.database).strip("`")
        name = m.group(2).strip("`")
        _table([db, name], name, frozenset(), self.storage.database)
        where = f"database = {string_literal(db)} AND table = {string_literal(name)}"
        if word == "EXISTS":
            return f"SELECT toUInt8(count() > 0) AS result FROM system.columns WHERE {where}"
        return (f"SELECT name, type, default_kind AS default_type, default_expression, comment "
                f"FROM system.columns WHERE {where} ORDER BY position")

    def _show_tables_select(self, top: dict[str, Any]) -> str:
        """`SHOW TABLES [FROM <telemetry db>] [LIKE 'p']` as a SELECT over system.columns."""
        database = self.storage.database
        extra = set(top) - {"type", "from", "like", "is_outfile_append", "is_outfile_truncate",
                            "is_into_outfile_with_stdout"}
        if extra:
            raise Refused(f"only SHOW TABLES [FROM {database}] [LIKE 'pattern'] is allowed")
        db = (top.get("from") or {}).get("name", database)
        if db != database:
            raise Refused(f"SHOW TABLES FROM {db} is not allowed: the query API reads the `{database}` database")
        like = f" AND table LIKE {string_literal(top['like'])}" if "like" in top else ""
        return (f"SELECT DISTINCT table AS name FROM system.columns WHERE database = {string_literal(database)}{like} "
                "ORDER BY name")

    def _explain(self, sql: str, top: dict[str, Any]) -> str:
        """EXPLAIN of a SELECT the API would run, as parsed (no settings): the statement itself runs."""
        if top.get("kind") not in EXPLAIN_KINDS:
            raise Refused(f"{top.get('kind')} is not allowed (allowed: {', '.join(sorted(EXPLAIN_KINDS))})")
        if "settings" in top:
            raise Refused("EXPLAIN settings are not allowed")
        query = top.get("query") or {}
        if set(top) - {"type", "kind", "query", "is_outfile_append", "is_outfile_truncate",
                       "is_into_outfile_with_stdout"}:
            _plain(top)
            raise Refused("EXPLAIN takes one SELECT")
        if query.get("type") != "SelectWithUnionQuery":
            raise Refused(f"EXPLAIN is allowed of a SELECT only (got {query.get('type')})")
        _plain(query)
        check(query, self.allowed(), self.storage.database)
        return sql

    def run(self, text: str) -> list[dict[str, Any]]:
        wrapped = self.prepare(text)
        settings = {"readonly": 1, "max_execution_time": self.cfg.max_execution_seconds,
                    "timeout_overflow_mode": "throw", "max_memory_usage": self.cfg.max_memory_bytes,
                    "max_result_bytes": self.cfg.max_result_bytes, "result_overflow_mode": "throw"}
        try:
            return self.storage.query(wrapped, settings)
        except Timeout as err:
            raise Timeout(f"{err} (server.query.max_execution_seconds = {self.cfg.max_execution_seconds})") from None
        except LimitExceeded as err:
            if code_of(str(err)) == 396:  # TOO_MANY_ROWS_OR_BYTES: max_result_bytes
                raise ResultTooLarge(f"{err} (server.query.max_result_bytes = {self.cfg.max_result_bytes})") from None
            if code_of(str(err)) == 241:  # MEMORY_LIMIT_EXCEEDED
                raise LimitExceeded(f"{err} (server.query.max_memory_bytes = {self.cfg.max_memory_bytes})") from None
            raise

    async def handle(self, request: web.Request) -> web.Response:
        raw = await request.read()
        if request.content_type == "application/json":
            try:
                data = json.loads(raw)
                sql = data["sql"]
                if not isinstance(sql, str):
                    raise TypeError
            except (ValueError, KeyError, TypeError):
                return web.json_response({"error": 'body must be JSON {"sql": "SELECT ..."}'}, status=400)
        else:
            sql = raw.decode("utf-8", "replace")
        if self._running >= self.cfg.max_concurrent_queries:
            return web.json_response(
                {"error": f"query API busy: {self._running} queries running "
                          f"(server.query.max_concurrent_queries = {self.cfg.max_concurrent_queries})"},
                status=429, headers={"Retry-After": str(RETRY_BUSY_SECONDS)})
        self._running += 1
        started = time.monotonic()
        try:
            rows = await asyncio.get_running_loop().run_in_executor(self._pool, self.run, sql)
        except ResultTooLarge as err:
            return web.json_response({"error": str(err)}, status=413)
        except (QueryError, DataError) as err:
            return web.json_response({"error": str(err)}, status=400)
        except StorageError as err:
            return web.json_response({"error": f"storage unavailable: {err}"}, status=503,
                                     headers={"Retry-After": "5"})
        finally:
            self._running -= 1
        truncated = len(rows) > self.cfg.max_rows
        rows = rows[: self.cfg.max_rows]
        body = json.dumps({"rows": rows, "row_count": len(rows), "truncated": truncated,
                           "elapsed_seconds": round(time.monotonic() - started, 6)}, default=str).encode()
        if len(body) > self.cfg.max_result_bytes:
            return web.json_response(
                {"error": f"result is {len(body)} bytes of JSON, over server.query.max_result_bytes "
                          f"({self.cfg.max_result_bytes}): select fewer rows or columns"}, status=413)
        return web.Response(body=body, content_type="application/json")
