"""Who is calling: the authenticated client of a request, as set by the auth middleware."""
from __future__ import annotations

from aiohttp import web

_CLIENT = "infersight_client"


def client_of(request: web.Request) -> str:
    """The authenticated client's name ('' when the server runs without tokens)."""
    return str(request.get(_CLIENT, ""))
