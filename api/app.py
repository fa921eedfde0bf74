"""The ASGI application: routes, authentication, GraphQL, health checks."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import text
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.authentication import AuthenticationMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send
from strawberry.asgi import GraphQL

from api.auth import SubjectUser, TokenBackend, on_auth_error
from api.context import PURPOSE_HEADER, RequestContext, build_context, new_request_id
from api.graphql.schema import build_schema
from api.ratelimit import RateLimiter
from api.settings import Settings
from api.tokens import TokenService
from audit.keys import (
    AUDIT_HMAC_KEY,
    AUDIT_SIGNING_KEY,
    load_or_create_ed25519,
    load_or_create_secret,
)
from audit.log import value_hasher
from authz.policy import AllowAllPolicy, Policy
from authz.subject import Subject
from domain.session import create_engine, session_factory

log = logging.getLogger("xinqiao.api")


class XinqiaoGraphQL(GraphQL[RequestContext, None]):
    def __init__(self, *, policy: Policy, settings: Settings, sessions: Any) -> None:
        super().__init__(
            build_schema(settings),
            graphql_ide=None if settings.production else "graphiql",
            allow_queries_via_get=not settings.production,
        )
        self.policy = policy
        self.settings = settings
        self.sessions = sessions
        self.lookup_limiter = RateLimiter(settings.lookup_limit_per_minute, 60.0)
        self.hash_value = value_hasher(load_or_create_secret(settings.key_dir / AUDIT_HMAC_KEY))
        self.signer = load_or_create_ed25519(settings.key_dir / AUDIT_SIGNING_KEY)

    async def get_context(self, request: Request, response: Any) -> RequestContext:  # type: ignore[override]
        user = request.scope.get("user")
        subject = user.subject if isinstance(user, SubjectUser) else Subject.anonymous()
        context = build_context(
            sessions=self.sessions,
            policy=self.policy,
            settings=self.settings,
            subject=subject,
            request_id=new_request_id(request.headers.get("x-request-id")),
            client_address=request.client.host if request.client else None,
            purpose=request.headers.get(PURPOSE_HEADER),
            user_agent=request.headers.get("user-agent"),
            traceparent=request.headers.get("traceparent"),
            hash_value=self.hash_value,
        )
        context.access_log.signer = self.signer
        context.access_log.checkpoint_every = self.settings.audit_checkpoint_every
        context.request = request
        context.response = response
        context.lookup_limiter = self.lookup_limiter
        return context


class BodyLimit:
    """Refuse request bodies over the configured size before they are read into memory."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            length = dict(scope.get("headers", [])).get(b"content-length")
            if length is not None and (not length.isdigit() or int(length) > self.max_bytes):
                await JSONResponse(
                    {
                        "errors": [
                            {
                                "message": "请求过大 (request too large)",
                                "extensions": {"code": "PAYLOAD_TOO_LARGE"},
                            }
                        ]
                    },
                    status_code=413,
                )(scope, receive, send)
                return
        await self.app(scope, receive, send)


class SecurityHeaders:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def send_with_headers(message: Any) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers += [
                    (b"x-content-type-options", b"nosniff"),
                    (b"referrer-policy", b"no-referrer"),
                    (b"cache-control", b"no-store"),
                    (b"x-frame-options", b"DENY"),
                ]
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)


def create_app(settings: Settings | None = None, *, policy: Policy | None = None) -> Starlette:
    settings = settings or Settings.from_env()
    if isinstance(policy, AllowAllPolicy) and settings.production:
        raise SystemExit("the allow-all policy is for benchmarks and tests, never production")
    engine = create_engine(settings.database_url)
    sessions = session_factory(engine)
    policy = policy or Policy()
    tokens = TokenService.from_key_dir(
        settings.key_dir,
        issuer=settings.token_issuer,
        audience=settings.token_audience,
        ttl_seconds=settings.token_ttl_seconds,
    )
    graphql = XinqiaoGraphQL(policy=policy, settings=settings, sessions=sessions)

    async def healthz(_request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(_request: Request) -> Response:
        try:
            async with engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
        except Exception:
            log.exception("readiness check failed")
            return JSONResponse({"status": "unavailable", "database": "down"}, status_code=503)
        return JSONResponse({"status": "ok", "database": "up"})

    @asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        yield
        await engine.dispose()

    app = Starlette(
        routes=[
            Route("/healthz", healthz),
            Route("/readyz", readyz),
            Route("/graphql", graphql, methods=["GET", "POST"]),
        ],
        middleware=[
            Middleware(SecurityHeaders),
            Middleware(BodyLimit, max_bytes=settings.max_body_bytes),
            Middleware(
                AuthenticationMiddleware,
                backend=TokenBackend(tokens, engine),
                on_error=on_auth_error,
            ),
        ],
        lifespan=lifespan,
    )
    app.state.engine = engine
    app.state.tokens = tokens
    app.state.settings = settings
    return app
