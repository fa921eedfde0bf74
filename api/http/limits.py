"""The request-body size limit, enforced before any body reaches GraphQL or the token endpoint.

A middleware of its own because a chunked body declares no length: the limit must count bytes
as the application reads them and answer 413 (in GraphQL's error shape, with the trace id) as
soon as the count passes it.
"""

from __future__ import annotations

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send


class _TooLarge(Exception):
    pass


class BodyLimit:
    """Refuse request bodies over the configured size, by their declared length or, for a body
    sent without one (chunked), by counting bytes as they arrive."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope.get("headers", [])).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_bytes):
            await self._refuse(scope, receive, send)
            return
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise _TooLarge()
            return message

        try:
            await self.app(scope, counted, send)
        except _TooLarge:
            await self._refuse(scope, receive, send)

    @staticmethod
    async def _refuse(scope: Scope, receive: Receive, send: Send) -> None:
        extensions = {"code": "PAYLOAD_TOO_LARGE"}
        trace_id = scope.get("state", {}).get("trace_id")
        if trace_id:
            extensions["traceId"] = trace_id
        body = {"errors": [{"message": "请求过大 (request too large)", "extensions": extensions}]}
        await JSONResponse(body, status_code=413)(scope, receive, send)
