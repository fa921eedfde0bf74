"""The request's session behind one lock.

GraphQL resolves sibling fields concurrently, and one ``AsyncSession`` must not be used by two
tasks at once: every statement the gate runs goes through here.
"""

from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy.engine import Result
from sqlalchemy.ext.asyncio import AsyncSession


class Db:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session
        self.lock = asyncio.Lock()

    async def execute(self, stmt: Any) -> Result[Any]:
        async with self.lock:
            return await self.session.execute(stmt)

    async def flush(self) -> None:
        async with self.lock:
            await self.session.flush()
