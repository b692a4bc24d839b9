"""What the server composes: a named part that owns some tables and adds routes and start/stop hooks.

Paths served without a token are declared by `attach` itself (`gateway.auth.allow_public`) next to
the routes, so an app assembled without `build_app` (tests) has the same guard.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from aiohttp import web

from infersight.storage.schema import DdlSource


class Component(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def ddl(self) -> tuple[DdlSource, ...]:
        """This component's tables, created by `ensure_schema` before the server starts."""
        ...

    def attach(self, app: web.Application) -> None:
        """Add routes, app keys and startup/shutdown/cleanup hooks to `app`."""
        ...


@dataclass(frozen=True)
class Attached:
    """A component made of an area's `attach` function (already bound to its configuration and store)."""

    name: str
    ddl: tuple[DdlSource, ...]
    attach_to: Callable[[web.Application], None]

    def attach(self, app: web.Application) -> None:
        self.attach_to(app)
