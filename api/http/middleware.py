"""The middleware every request passes through, outermost first.

The order is the security argument, so it is written down once, here: tracing outermost (every
answer, refusals included, gets a trace id and a log line); CORS next (preflights answered
before anything else runs); security headers on all that follows; the body limit before anything
reads a body; bearer authentication last, right before the routes.
"""

from __future__ import annotations

from starlette.authentication import AuthenticationBackend
from starlette.middleware import Middleware
from starlette.middleware.authentication import AuthenticationMiddleware
from starlette.middleware.cors import CORSMiddleware

from api.auth import on_auth_error
from api.context import PURPOSE_HEADER
from api.http.headers import SecurityHeaders
from api.http.limits import BodyLimit
from api.settings import Settings
from api.telemetry import Telemetry, TraceMiddleware


def middleware(
    settings: Settings, telemetry: Telemetry, authentication: AuthenticationBackend
) -> list[Middleware]:
    return [
        Middleware(TraceMiddleware, telemetry=telemetry),
        Middleware(
            CORSMiddleware,
            allow_origins=list(settings.cors_origins),
            allow_methods=["GET", "POST"],
            allow_headers=[
                "Authorization",
                "Content-Type",
                PURPOSE_HEADER,
                "X-Request-ID",
                "traceparent",
            ],
            max_age=600,
        ),
        Middleware(SecurityHeaders),
        Middleware(BodyLimit, max_bytes=settings.max_body_bytes),
        Middleware(AuthenticationMiddleware, backend=authentication, on_error=on_auth_error),
    ]
