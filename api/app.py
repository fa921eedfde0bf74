"""The ASGI application, assembled from its parts: GraphQL (``api.http.graphql_view``), the
OAuth token endpoint (``api.http.oauth``), health checks (``api.http.health``), the middleware
stack (``api.http.middleware``) and the start-up and shutdown work (``api.lifespan``).

Only assembly happens here: which services are built from the settings, and who gets which.
"""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.routing import Route, WebSocketRoute

from api.auth import TOKEN_PATH, TokenBackend
from api.http.graphql_view import XinqiaoGraphQL
from api.http.health import Readiness, healthz
from api.http.middleware import middleware
from api.http.oauth import TokenEndpoint
from api.keyring import load as load_keys
from api.lifespan import Lifespan
from api.protection import Protection
from api.settings import Settings
from api.telemetry import Telemetry
from api.tokens import TokenService
from authz.policy import Policy
from domain.session import create_engine, session_factory


def create_app(
    settings: Settings | None = None,
    *,
    policy: Policy | None = None,
    telemetry: Telemetry | None = None,
    protection: Protection | None = None,
) -> Starlette:
    """The application. ``protection`` is the standard one (with ``policy`` if given) unless the
    benchmark injects its comparison parts; production refuses anything but the standard."""
    settings = settings or Settings.from_env()
    telemetry = telemetry or Telemetry.from_env()
    protection = protection or Protection(policy or Policy())
    protection.check(settings)
    keys = load_keys(settings.key_dir, suite=settings.cipher_suite)  # refuses without a key
    engine = create_engine(settings.database_url)
    telemetry.instrument(engine)
    tokens = TokenService.from_settings(settings)
    graphql = XinqiaoGraphQL(
        settings=settings,
        protection=protection,
        sessions=session_factory(engine),
        engine=engine,
        tokens=tokens,
        keys=keys,
        telemetry=telemetry,
    )
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
