"""The registered (persisted) documents the guard admits: each partner client's, and the staff
allow-list that production deployments restrict staff to.

A cache of its own because the guard asks on every operation (over HTTP and on a socket's
subscribe), while registering or revoking a document must still take effect within seconds.
The database read is passed in (``api.identity.registered_documents``): this package reaches
the database only through the gate.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

DocumentsOf = Callable[[int | None], Awaitable[dict[str, str]]]
"""Reads the documents registered for a client's primary key (``None``: the staff allow-list)."""


class PersistedRegistry:
    """Registered documents per partner client (and the staff allow-list), cached for a few
    seconds so registering or revoking takes effect quickly without a query per request."""

    TTL = 5.0

    def __init__(self, read: DocumentsOf) -> None:
        self.read = read
        self._cache: dict[int | None, tuple[float, dict[str, str]]] = {}

    async def documents(self, client_pk: int | None) -> dict[str, str]:
        """SHA-256 to document, for one client (``None``: the staff allow-list)."""
        hit = self._cache.get(client_pk)
        if hit is not None and hit[0] > time.monotonic():
            return hit[1]
        docs = await self.read(client_pk)
        self._cache[client_pk] = (time.monotonic() + self.TTL, docs)
        return docs
