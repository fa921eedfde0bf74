"""``/healthz`` (the process answers) and ``/readyz`` (it can serve: database reachable, keys
checked), for the orchestrator's liveness and readiness probes.

Readiness depends on the start-up key check, which runs in the ASGI lifespan (``api.lifespan``)
and records its result on ``app.state.keys_verified``; tests that skip the lifespan set it
themselves, so it is read from the application on each probe.
"""

from __future__ import annotations

import logging

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

log = logging.getLogger("xinqiao.api")


async def healthz(_request: Request) -> Response:
    return JSONResponse({"status": "ok"})


class Readiness:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def readyz(self, request: Request) -> Response:
        try:
            async with self.engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
        except Exception:
            log.exception("readiness check failed")
            return JSONResponse({"status": "unavailable", "database": "down"}, status_code=503)
        if not request.app.state.keys_verified:
            # The start-up key check runs in the ASGI lifespan: without it, not ready.
            return JSONResponse({"status": "unavailable", "keys": "unchecked"}, status_code=503)
        return JSONResponse({"status": "ok", "database": "up", "keys": "checked"})
