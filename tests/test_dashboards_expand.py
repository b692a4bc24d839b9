"""What Grafana and its ClickHouse plugin do to a panel's SQL before ClickHouse sees it.

Ported from grafana/clickhouse-datasource (frontend `applyConditionalAll` and the multi-value
format `'a','b'`; backend `pkg/macros`) and Grafana's template-variable syntax, so dashboard
SQL can run in chDB exactly as Grafana would send it.
"""
from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import datetime

ALL = "$__all"
# Grafana's variable regex: $name, [[name:fmt]], ${name.field:fmt}
_VAR = re.compile(r"\$(\w+)|\[\[(\w+?)(?::(\w+))?\]\]|\$\{(\w+)(?:\.([^:^}]+))?(?::([^}]+))?\}")
_MACRO = re.compile(r"\$__(\w+)")
_CONDITIONAL_ALL = "$__conditionalAll("


def _macro_args(sql: str, open_paren: int) -> tuple[list[str], int]:
    """Split the arguments of the call whose '(' is at open_paren; returns (args, index after ')')."""
    depth, start, args = 0, open_paren + 1, []
    for i in range(open_paren, len(sql)):
        ch = sql[i]
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth == 0:
                args.append(sql[start:i])
                return args, i + 1
        elif ch == "," and depth == 1:
            args.append(sql[start:i])
            start = i + 1
    raise ValueError(f"unbalanced macro call at {open_paren}: {sql[open_paren:open_paren + 80]!r}")


def conditional_all(sql: str, variables: Mapping[str, object]) -> str:
    """`$__conditionalAll(cond, $var)` -> `1=1` when var is All or empty, else `cond` (plugin frontend)."""
    idx = sql.rfind(_CONDITIONAL_ALL)
    while idx != -1:
        args, end = _macro_args(sql, idx + len(_CONDITIONAL_ALL) - 1)
        if len(args) != 2:
            raise ValueError(f"$__conditionalAll takes 2 arguments, got {len(args)}")
        m = re.search(r"(?<=\$\{)\w+(?=\})|(?<=\$)\w+", args[1].strip())
        phrase = args[0]
        if m:
            value = variables.get(m.group(0))
            if value in (ALL, "", None):
                phrase = "1=1"
        sql = sql[:idx] + phrase + sql[end:]
        idx = sql.rfind(_CONDITIONAL_ALL)
    return sql


def template(sql: str, variables: Mapping[str, object], options: Mapping[str, Sequence[str]]) -> str:
    """Grafana's templateSrv.replace with the plugin's format function (lists become 'a','b')."""
    def sub(m: re.Match) -> str:
        name = m.group(1) or m.group(2) or m.group(4)
        if name not in variables:
            return m.group(0)
        value = variables[name]
        if value == ALL:
            value = list(options[name])
        if isinstance(value, (list, tuple)):
            return "'" + "','".join(value) + "'"
        return str(value)

    return _VAR.sub(sub, sql)


def backend_macros(sql: str, frm: datetime, to: datetime, interval_s: int) -> str:
    """The plugin's server-side macros (pkg/macros/macros.go)."""
    f, t = int(frm.timestamp()), int(to.timestamp())
    step = max(interval_s, 1)
    out, pos = [], 0
    for m in _MACRO.finditer(sql):
        if m.start() < pos:
            continue
        name, end = m.group(1), m.end()
        args: list[str] = []
        if end < len(sql) and sql[end] == "(":
            args, end = _macro_args(sql, end)
        if name == "timeFilter":
            (col,) = args
            text = f"{col} >= toDateTime({f}) AND {col} <= toDateTime({t})"
        elif name == "timeInterval":
            (col,) = args
            text = f"toStartOfInterval(toDateTime({col}), INTERVAL {step} second)"
        elif name == "interval_s":
            text, end = str(step), m.end()
        elif name == "fromTime":
            text, end = f"toDateTime({f})", m.end()
        elif name == "toTime":
            text, end = f"toDateTime({t})", m.end()
        else:
            raise ValueError(f"macro $__{name} is not one the plugin expands here")
        out.append(sql[pos:m.start()] + text)
        pos = end
    out.append(sql[pos:])
    return "".join(out)


def expand(sql: str, *, database: str, frm: datetime, to: datetime, interval_s: int = 60,
           variables: Mapping[str, object] | None = None,
           options: Mapping[str, Sequence[str]] | None = None) -> str:
    """Panel SQL as ClickHouse would receive it, with the `otel` database swapped for `database`."""
    variables = variables or {}
    sql = conditional_all(sql, variables)
    sql = template(sql, variables, options or {})
    sql = backend_macros(sql, frm, to, interval_s)
    return re.sub(r"\botel\.(?=(?:otel|infersight)_)", f"`{database}`.", sql)


# ---------------------------------------------------------------- the expander's own checks
# Expected strings follow the plugin's sources: pkg/macros/macros.go and CHDatasource.applyConditionalAll.

FROM = datetime.fromisoformat("2026-01-01T00:00:00+00:00")
TO = datetime.fromisoformat("2026-01-01T01:00:00+00:00")


def test_backend_macros_match_the_plugin():
    sql = "SELECT $__timeInterval(ts) AS t, $__interval_s FROM x WHERE $__timeFilter(ts) AND a < $__toTime"
    assert backend_macros(sql, FROM, TO, 300) == (
        "SELECT toStartOfInterval(toDateTime(ts), INTERVAL 300 second) AS t, 300 FROM x WHERE "
        "ts >= toDateTime(1767225600) AND ts <= toDateTime(1767229200) AND a < toDateTime(1767229200)")
    assert backend_macros("$__fromTime", FROM, TO, 0) == "toDateTime(1767225600)"


def test_unknown_macro_is_an_error():
    import pytest

    with pytest.raises(ValueError, match=r"\$__dateFilter"):
        backend_macros("WHERE $__dateFilter(d)", FROM, TO, 60)


def test_conditional_all_and_multi_value_format():
    sql = "WHERE $__conditionalAll(c IN (${cloud}), $cloud) AND $__conditionalAll(m IN (${model}), $model)"
    picked = expand(sql, database="d", frm=FROM, to=TO, variables={"cloud": ALL, "model": ["a", "b"]})
    assert picked == "WHERE 1=1 AND m IN ('a','b')"
    nested = "WHERE $__conditionalAll(f(x, (1, 2)) IN (${cloud}), $cloud)"
    assert expand(nested, database="d", frm=FROM, to=TO, variables={"cloud": ["aws"]}) == \
        "WHERE f(x, (1, 2)) IN ('aws')"


def test_all_expands_to_every_option_and_database_is_swapped():
    sql = "SELECT 1 FROM otel.otel_metrics_sum WHERE h IN (${host})"
    assert expand(sql, database="t_1", frm=FROM, to=TO, variables={"host": ALL}, options={"host": ["n1", "n2"]}) == \
        "SELECT 1 FROM `t_1`.otel_metrics_sum WHERE h IN ('n1','n2')"
