"""The part interface every signal's rows implement, and the per-request result.

A request's rows stay Python columns (a `Part`) until the writer thread flushes: `to_arrow` merges
the parts of one table queued by several requests and builds Arrow once, which keeps the fixed cost
of Arrow calls off each request. Parts refer to the attribute `Generation` they were interned in;
parts of different generations are built apart and concatenated.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, TypeVar

import pyarrow as pa

from infersight.gateway.rows.attrs import Generation

P = TypeVar("P", bound="Rows")


class Part(Protocol):
    """Rows of one table from one request, built into Arrow by the writer."""

    table: str

    @property
    def num_rows(self) -> int: ...

    @classmethod
    def to_arrow(cls, parts: Sequence[Any]) -> pa.Table: ...


def to_arrow(parts: Sequence[Part]) -> pa.Table:
    """One Arrow table from parts of one table (all of one signal's class)."""
    return type(parts[0]).to_arrow(parts)


class Rows:
    """Deferred rows as lists per column; `merge` extends them, `build` turns one generation into Arrow."""

    table: str
    COLUMNS: tuple[str, ...] = ()

    def __init__(self, gen: Generation) -> None:
        self.gen = gen  # the AttrSets generation its ids refer to
        self.cols: dict[str, list[Any]] = {k: [] for k in self.COLUMNS}

    @property
    def num_rows(self) -> int:
        raise NotImplementedError

    def merge(self, other: Any) -> None:
        for k, v in other.cols.items():
            self.cols[k].extend(v)

    def build(self) -> pa.Table:
        raise NotImplementedError

    def empty(self: P) -> P:
        """A part of the same table and generation, with no rows."""
        return type(self)(self.gen)

    @classmethod
    def to_arrow(cls, parts: Sequence[Any]) -> pa.Table:
        """Merge the parts per generation (in order), build each once, concatenate."""
        merged: dict[Generation, Rows] = {}
        for p in parts:
            acc = merged.get(p.gen)
            if acc is None:
                acc = merged[p.gen] = p.empty()
            acc.merge(p)
        tables = [m.build() for m in merged.values()]
        if len(tables) == 1:
            return tables[0]
        return pa.concat_tables(tables, promote_options="permissive").unify_dictionaries().combine_chunks()


class Result:
    """The parts of one request (one per table) plus what was rejected (for `partial_success`)."""

    def __init__(self) -> None:
        self.parts: dict[str, Part] = {}
        self.rows = 0
        self.rejected = 0
        self.errors: list[str] = []

    def reject(self, count: int, why: str) -> None:
        self.rejected += count
        if len(self.errors) < 5:
            self.errors.append(why)

    @property
    def message(self) -> str:
        return "; ".join(self.errors)

    def add(self, part: Part) -> None:
        if part.num_rows:
            self.parts[part.table] = part
            self.rows += part.num_rows
