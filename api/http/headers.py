"""Security headers on every HTTP response: no MIME sniffing, no referrer, no caching (answers
carry personal data), no framing.

A middleware rather than per-route headers so that every route's answers carry them, and so do
the refusals of the middleware inside it (body limit, authentication); CORS preflights are
answered outside it (``api.http.middleware`` gives the order).
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"cache-control", b"no-store"),
    (b"x-frame-options", b"DENY"),
]


class SecurityHeaders:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers += HEADERS
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)
