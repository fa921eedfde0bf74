"""The ASGI application: routes, authentication, GraphQL, health checks."""

from __future__ import annotations

import logging
import time
from datetime import timedelta
from typing import Any

from sqlalchemy import select
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.routing import Route, WebSocketRoute
from strawberry.asgi import GraphQL
from strawberry.exceptions import ConnectionRejectionError
from strawberry.http import GraphQLRequestData
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import (
    BaseGraphQLTransportWSHandler,
)
from strawberry.types import ExecutionResult

from api.auth import TOKEN_PATH, SubjectUser, TokenBackend, load_subject
from api.context import PURPOSE_HEADER, RequestContext, build_context, new_request_id
from api.graphql.extensions import error_ids
from api.graphql.guard import check_client_operation, check_rate, resolve_document
from api.graphql.schema import build_schema
from api.http.health import Readiness, healthz
from api.http.middleware import middleware
from api.http.oauth import TokenEndpoint
from api.keyring import load as load_keys
from api.lifespan import Lifespan
from api.live import AlertFeed, LiveConnection
from api.ratelimit import RateLimiter, RedisRateLimiter
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
from authz.policy import AllowAllPolicy, Policy
from authz.probe import NO_PROBE
from authz.subject import Subject
from domain.disclosure import AccessKind, Disclosure
from domain.identity import PersistedQuery
from domain.session import create_engine, session_factory, system_session

log = logging.getLogger("xinqiao.api")


class GuardedTransportWS(BaseGraphQLTransportWSHandler[Any, None]):
    """graphql-transport-ws with the HTTP guard's document rule: where staff may not run ad-hoc
    operations (production), a subscription must be a registered document too."""

    async def handle_subscribe(self, message: Any) -> None:
        view: XinqiaoGraphQL = self.view  # type: ignore[assignment]
        if self.connection_acknowledged and not view.settings.staff_may_run_adhoc:
            request = GraphQLRequestData(
                query=(message.get("payload") or {}).get("query"),
                variables=None,
                operation_name=None,
                extensions=(message.get("payload") or {}).get("extensions"),
            )
            problem = resolve_document(request, await view.registries.documents(None))
            if problem is not None:
                await self.send_message(
                    {"id": message["id"], "type": "error", "payload": [problem.formatted]}
                )
                return
            message["payload"]["query"] = request.query
        await super().handle_subscribe(message)


class XinqiaoGraphQL(GraphQL[RequestContext, None]):
    graphql_transport_ws_handler_class = GuardedTransportWS

    def __init__(
        self,
        *,
        policy: Policy,
        settings: Settings,
        sessions: Any,
        engine: Any,
        tokens: Any,
        keys: Any,
    ) -> None:
        super().__init__(
            build_schema(settings),
            graphql_ide=None if settings.production else "graphiql",
            allow_queries_via_get=not settings.production,
            subscription_protocols=(GRAPHQL_TRANSPORT_WS_PROTOCOL,),
            connection_init_wait_timeout=timedelta(seconds=10),
            max_subscriptions_per_connection=5,
            allowed_origins=settings.cors_origins,
        )
        self.feed = AlertFeed(engine, settings.alert_feed_seconds)
        self.keys = keys
        self.policy = policy
        self.settings = settings
        self.sessions = sessions
        self.engine = engine
        self.tokens = tokens
        self.lookup_limiter = RateLimiter(settings.lookup_limit_per_minute, 60.0)
        self.request_limiter: Any = (
            RedisRateLimiter(settings.redis_url, settings.rate_limit_per_minute)
            if settings.redis_url
            else RateLimiter(settings.rate_limit_per_minute, 60.0)
        )
        self.registries = PersistedRegistry(engine)
        self.telemetry = Telemetry()
        self.unprotected = False
        """Set by ``create_app``; the no-op default keeps a bare view usable in tests."""
        self.hash_value = value_hasher(load_or_create_secret(settings.key_dir / AUDIT_HMAC_KEY))
        self.signer = load_or_create_ed25519(settings.key_dir / AUDIT_SIGNING_KEY)

    async def execute_single(  # type: ignore[override]
        self,
        request: Request,
        request_adapter: Any,
        sub_response: Any,
        context: RequestContext,
        root_value: Any,
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
                self.schema._schema, request_data.query, subject.operations
            )
        if problem is None:
            # One budget per principal (not per token: minting tokens must not buy requests),
            # and per address for anonymous callers (sign-in, refresh).
            if subject.staff_id is not None:
                key = f"staff:{subject.staff_id}"
            elif subject.client_id is not None:
                key = f"client:{subject.client_id}"
            else:
                key = f"addr:{request.client.host if request.client else '-'}"
            problem = await check_rate(self.request_limiter, key)
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

    async def get_context(  # type: ignore[override]
        self, request: Request, response: Any
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

    async def on_ws_connect(self, context: Any) -> None:  # type: ignore[override]
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

    def _context(self, subject: Subject, request: Request, response: Any) -> RequestContext:
        context = build_context(
            sessions=self.sessions,
            policy=self.policy,
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
            unprotected=self.unprotected,
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


class PersistedRegistry:
    """Registered documents per partner client (and the staff allow-list), cached for a few
    seconds so registering or revoking takes effect quickly without a query per request."""

    TTL = 5.0

    def __init__(self, engine: Any) -> None:
        self.engine = engine
        self._cache: dict[int | None, tuple[float, dict[str, str]]] = {}

    async def documents(self, client_pk: int | None) -> dict[str, str]:
        hit = self._cache.get(client_pk)
        if hit is not None and hit[0] > time.monotonic():
            return hit[1]
        async with system_session(self.engine, reason="persisted query registry") as s:
            owner = (
                PersistedQuery.client_id.is_(None)
                if client_pk is None
                else PersistedQuery.client_id == client_pk
            )
            rows = (
                await s.execute(select(PersistedQuery.sha256, PersistedQuery.document).where(owner))
            ).all()
        docs = {sha: doc for sha, doc in rows}
        self._cache[client_pk] = (time.monotonic() + self.TTL, docs)
        return docs


def create_app(
    settings: Settings | None = None,
    *,
    policy: Policy | None = None,
    telemetry: Telemetry | None = None,
    unprotected: bool = False,
) -> Starlette:
    """The application. ``unprotected`` is the benchmark's comparison mode (allow-all policy, no
    access log, sealed fields served as stand-ins): refused in production like the policy."""
    settings = settings or Settings.from_env()
    if unprotected:
        policy = AllowAllPolicy()
    telemetry = telemetry or Telemetry.from_env()
    if isinstance(policy, AllowAllPolicy) and settings.production:
        raise SystemExit("the allow-all policy is for benchmarks and tests, never production")
    keys = load_keys(settings.key_dir, suite=settings.cipher_suite)  # refuses without a key
    engine = create_engine(settings.database_url)
    telemetry.instrument(engine)
    sessions = session_factory(engine)
    policy = policy or Policy()
    tokens = TokenService.from_settings(settings)
    graphql = XinqiaoGraphQL(
        policy=policy, settings=settings, sessions=sessions, engine=engine, tokens=tokens, keys=keys
    )
    graphql.telemetry = telemetry
    graphql.unprotected = unprotected
    app = Starlette(
        routes=[
            Route("/healthz", healthz),
            Route("/readyz", Readiness(engine).readyz),
            Route("/graphql", graphql, methods=["GET", "POST"]),
            WebSocketRoute("/graphql", graphql),
            Route(TOKEN_PATH, TokenEndpoint(engine, tokens, graphql).exchange, methods=["POST"]),
        ],
        middleware=middleware(settings, telemetry, TokenBackend(tokens, engine, telemetry)),
        lifespan=Lifespan(
            engine=engine, keys=keys, settings=settings, telemetry=telemetry, feed=graphql.feed
        ),
    )
    app.state.engine = engine
    app.state.keys = keys
    app.state.keys_verified = False
    app.state.graphql = graphql
    app.state.tokens = tokens
    app.state.settings = settings
    app.state.telemetry = telemetry
    return app
