"""``POST /oauth/token``: partner clients exchange their credentials for a bearer token.

It exists apart from GraphQL because OAuth 2.0 fixes its shape (a form body, HTTP Basic client
authentication, errors as ``{"error": ...}``), and apart from ``api.app`` so that what it needs
is passed in: the engine and token service for the exchange, and the request budget it shares
with GraphQL.
"""

from __future__ import annotations

import base64
from typing import Protocol
from urllib.parse import parse_qs, unquote

from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from api.identity import IdentityError, exchange_client_credentials
from api.ratelimit import Limiter
from api.tokens import TokenService


class RequestBudget(Protocol):
    """Where the per-address budget is kept: the GraphQL view's limiter, read on each request
    (so replacing the view's limiter replaces this one too)."""

    request_limiter: Limiter


class TokenEndpoint:
    """OAuth 2.0 token endpoint, client-credentials grant only (RFC 6749 §4.4). Client
    authentication by HTTP Basic or form fields; errors in the RFC's shape."""

    def __init__(self, engine: AsyncEngine, tokens: TokenService, budget: RequestBudget) -> None:
        self.engine = engine
        self.tokens = tokens
        self.budget = budget

    async def exchange(self, request: Request) -> Response:
        body = (await request.body()).decode(errors="replace")
        form = {k: v[0] for k, v in parse_qs(body, keep_blank_values=True).items()}
        client_id, secret = form.get("client_id"), form.get("client_secret")
        auth = request.headers.get("authorization", "")
        if auth.lower().startswith("basic "):
            try:
                raw = base64.b64decode(auth[6:]).decode()
                client_id, _, secret = (unquote(p) for p in raw.partition(":"))
            except (ValueError, UnicodeDecodeError):
                client_id = secret = None
        address = request.client.host if request.client else "-"
        if not await self.budget.request_limiter.allow(f"token:{address}"):
            return JSONResponse({"error": "slow_down"}, status_code=429)
        if form.get("grant_type") != "client_credentials":
            return JSONResponse({"error": "unsupported_grant_type"}, status_code=400)
        if not client_id or not secret:
            return JSONResponse({"error": "invalid_request"}, status_code=400)
        try:
            token, ttl, scopes = await exchange_client_credentials(
                self.engine,
                self.tokens,
                client_id,
                secret,
                request.client.host if request.client else None,
            )
        except IdentityError:
            return JSONResponse(
                {"error": "invalid_client"},
                status_code=401,
                headers={"WWW-Authenticate": 'Basic realm="xinqiao"'},
            )
        return JSONResponse(
            {
                "access_token": token,
                "token_type": "Bearer",
                "expires_in": ttl,
                "scope": " ".join(scopes),
            }
        )
