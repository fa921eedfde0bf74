"""The GraphQL endpoint: strawberry's ASGI view, with the guard in front of every operation and a
fresh request context behind it.

It exists to hold the three strawberry hooks the service relies on, in one place: the admission
checks before an operation runs (persisted documents, client scopes, rate budget), the request
context each operation runs in, and the WebSocket's authentication at ``connection_init``. These
hook strawberry's internals (pinned at 0.341), so they are kept together and small. It lives
here, with the other endpoints, rather than in ``api.graphql``: it holds the engine and session
factory that request contexts are built from, and ``api.graphql`` reaches the database only
through the gate (``tests/architecture``).
"""

from __future__ import annotations

from datetime import timedelta
from functools import partial
from typing import Any, cast

from cross_web import AsyncHTTPRequestAdapter
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from starlette.requests import Request
from starlette.responses import Response
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.exceptions import ConnectionRejectionError
from strawberry.http import GraphQLRequestData
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import (
    BaseGraphQLTransportWSHandler,
)
from strawberry.subscriptions.protocols.graphql_transport_ws.types import SubscribeMessage
from strawberry.types import ExecutionResult

from api.auth import SubjectUser, load_subject
from api.context import PURPOSE_HEADER, RequestContext, build_context, new_request_id
from api.graphql.extensions import error_ids
from api.graphql.guard import check_client_operation, check_rate, resolve_document
from api.graphql.persisted import PersistedRegistry
from api.graphql.schema import build_schema
from api.identity import registered_documents
from api.live import AlertFeed, LiveConnection
from api.protection import Protection
from api.ratelimit import Limiter, RateLimiter, RedisRateLimiter
from api.settings import Settings
from api.telemetry import Telemetry
from api.tokens import InvalidToken, TokenService
from audit.keys import (
    AUDIT_HMAC_KEY,
    AUDIT_SIGNING_KEY,
    load_or_create_ed25519,
    load_or_create_secret,
)
from audit.log import value_hasher
from authz.probe import NO_PROBE
from authz.subject import Subject
from domain.disclosure import AccessKind, Disclosure
from domain.keys import KeyRing


class GuardedTransportWS(BaseGraphQLTransportWSHandler[RequestContext, None]):
    """graphql-transport-ws with the HTTP guard's document rule: where staff may not run ad-hoc
    operations (production), a subscription must be a registered document too."""

    async def handle_subscribe(self, message: SubscribeMessage) -> None:
        view: XinqiaoGraphQL = self.view  # type: ignore[assignment]  # the handler's view is ours
        if self.connection_acknowledged and not view.settings.staff_may_run_adhoc:
            # A client's message is not checked against the TypedDict: read it defensively.
            payload: dict[str, Any] = cast(dict[str, Any], message).get("payload") or {}
            request = GraphQLRequestData(
                query=payload.get("query"),
                variables=None,
                operation_name=None,
                extensions=payload.get("extensions"),
            )
            problem = resolve_document(request, await view.registries.documents(None))
            if problem is not None:
                await self.send_message(
                    {"id": message["id"], "type": "error", "payload": [problem.formatted]}
                )
                return
            message["payload"]["query"] = request.query  # type: ignore[typeddict-item]  # str | None: resolved
        await super().handle_subscribe(message)


class XinqiaoGraphQL(GraphQL[RequestContext, None]):
    """``/graphql`` over HTTP and graphql-transport-ws, guarded, one request context per
    operation (per delivery on a socket)."""

    graphql_transport_ws_handler_class = GuardedTransportWS

    def __init__(
        self,
        *,
        settings: Settings,
        protection: Protection,
        sessions: async_sessionmaker[AsyncSession],
        engine: AsyncEngine,
        tokens: TokenService,
        keys: KeyRing,
        telemetry: Telemetry,
    ) -> None:
        schema = build_schema(settings)
        super().__init__(
            schema,
            graphql_ide=None if settings.production else "graphiql",
            allow_queries_via_get=not settings.production,
            subscription_protocols=(GRAPHQL_TRANSPORT_WS_PROTOCOL,),
            connection_init_wait_timeout=timedelta(seconds=10),
            max_subscriptions_per_connection=5,
            allowed_origins=settings.cors_origins,
        )
        self.graphql_schema = schema._schema
        """graphql-core's schema under strawberry's, for the client-scope check."""
        self.feed = AlertFeed(
            engine, settings.alert_feed_seconds, settings.alert_safety_poll_seconds
        )
        self.keys = keys
        self.protection = protection
        self.settings = settings
        self.sessions = sessions
        self.engine = engine
        self.tokens = tokens
        self.lookup_limiter = RateLimiter(settings.lookup_limit_per_minute, 60.0)
        self.request_limiter: Limiter = (
            RedisRateLimiter(settings.redis_url, settings.rate_limit_per_minute)
            if settings.redis_url
            else RateLimiter(settings.rate_limit_per_minute, 60.0)
        )
        """Request budgets: per principal over GraphQL, per address at the token endpoint (which
        reads it from here, so replacing it, as tests do, replaces both)."""
        self.registries = PersistedRegistry(partial(registered_documents, engine))
        self.telemetry = telemetry
        self.hash_value = value_hasher(load_or_create_secret(settings.key_dir / AUDIT_HMAC_KEY))
        self.signer = load_or_create_ed25519(settings.key_dir / AUDIT_SIGNING_KEY)

    async def execute_single(
        self,
        request: Request,
        request_adapter: AsyncHTTPRequestAdapter,
        sub_response: Response,
        context: RequestContext,
        root_value: None,
        request_data: GraphQLRequestData,
    ) -> ExecutionResult:
        """Persisted queries, client scopes and rate limits, before anything runs (this hooks
        strawberry's per-operation entry point, pinned at 0.341)."""
        if request_adapter.method == "GET" and not self.allow_queries_via_get:
            return await super().execute_single(
                request, request_adapter, sub_response, context, root_value, request_data
            )  # strawberry refuses it (400)
        subject = context.subject
        registry = None
        if subject.client_id is not None:
            registry = await self.registries.documents(subject.client_pk)
        elif not self.settings.staff_may_run_adhoc:
            registry = await self.registries.documents(None)
        problem = resolve_document(request_data, registry)
        if problem is None and subject.client_id is not None and request_data.query:
            problem = check_client_operation(
                self.graphql_schema, request_data.query, subject.operations
            )
        if problem is None:
            problem = await check_rate(self.request_limiter, _budget_key(subject, request))
        if problem is not None:
            code = (problem.extensions or {}).get("code", "FORBIDDEN")
            context.access_log.record(
                Disclosure(AccessKind.DENIED, "operation", None, reason=str(code).lower()[:100])
            )
            try:
                await context.finish()  # the refusal is an access event too
            finally:
                await context.close()
            problem.extensions = {**(problem.extensions or {}), **error_ids(context)}
            return ExecutionResult(data=None, errors=[problem])
        return await super().execute_single(
            request, request_adapter, sub_response, context, root_value, request_data
        )

    async def get_context(  # type: ignore[override]  # a subscription gets a LiveConnection
        self, request: Request | WebSocket, response: Response | WebSocket
    ) -> RequestContext | LiveConnection:
        user = request.scope.get("user")
        subject = user.subject if isinstance(user, SubjectUser) else Subject.anonymous()
        if request.scope["type"] == "websocket":
            return LiveConnection(
                settings=self.settings,
                feed=self.feed,
                new_context=lambda who: self._context(who, request, response),
                header=request.headers.get("authorization"),
            )
        return self._context(subject, request, response)

    async def on_ws_connect(self, context: RequestContext | LiveConnection) -> None:
        """Authenticate a WebSocket at connection_init (browsers cannot set headers on it):
        staff only, with a live token, within the same request budget as over HTTP."""
        if not isinstance(context, LiveConnection):
            raise ConnectionRejectionError()
        params = context.connection_params or {}
        header = params.get("Authorization") or params.get("authorization") or context.header
        scheme, _, token = str(header or "").partition(" ")
        rejected = self.telemetry.token_rejections
        if scheme.lower() != "bearer" or not token.strip():
            rejected.add(1, {"reason": "malformed"})
            raise ConnectionRejectionError({"code": "UNAUTHENTICATED"})

        async def reload() -> Subject | None:
            try:
                return await load_subject(self.engine, self.tokens.verify(token.strip()), None)
            except (InvalidToken, ValueError):
                return None

        subject = await reload()
        if subject is None:  # counted as over HTTP, though the two causes are not told apart
            rejected.add(1, {"reason": "invalid_or_revoked"})
            raise ConnectionRejectionError({"code": "UNAUTHENTICATED"})
        context.subject = subject
        context.reload = reload
        if context.subject.staff_id is None:
            raise ConnectionRejectionError({"code": "FORBIDDEN"})
        if await check_rate(self.request_limiter, f"staff:{context.subject.staff_id}"):
            raise ConnectionRejectionError({"code": "RATE_LIMITED"})

    def _context(
        self, subject: Subject, request: Request | WebSocket, response: Response | WebSocket
    ) -> RequestContext:
        context = build_context(
            sessions=self.sessions,
            protection=self.protection,
            settings=self.settings,
            subject=subject,
            request_id=new_request_id(request.headers.get("x-request-id")),
            client_address=request.client.host if request.client else None,
            purpose=request.headers.get(PURPOSE_HEADER),
            user_agent=request.headers.get("user-agent"),
            trace_id=request.scope.get("state", {}).get("trace_id"),
            hash_value=self.hash_value,
            keys=self.keys,
            probe=self.telemetry if self.telemetry.tracing else NO_PROBE,
        )
        context.telemetry = self.telemetry
        context.access_log.signer = self.signer
        context.access_log.checkpoint_every = self.settings.audit_checkpoint_every
        context.request = request
        context.response = response
        context.lookup_limiter = self.lookup_limiter
        context.engine = self.engine
        context.tokens = self.tokens
        return context


def _budget_key(subject: Subject, request: Request) -> str:
    """One budget per principal (not per token: minting tokens must not buy requests), and per
    address for anonymous callers (sign-in, refresh)."""
    if subject.staff_id is not None:
        return f"staff:{subject.staff_id}"
    if subject.client_id is not None:
        return f"client:{subject.client_id}"
    return f"addr:{request.client.host if request.client else '-'}"
