"""The per-request context: one subject, one session, one gate, one access log, its loaders.

Built once per request and never shared: dataloader caches and the session belong to one viewer.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from starlette.requests import HTTPConnection
from starlette.responses import Response
from starlette.websockets import WebSocket
from strawberry.exceptions import StrawberryGraphQLError

from api.graphql.loaders import Loaders
from api.protection import Protection
from api.ratelimit import RateLimiter
from api.settings import Settings
from api.telemetry import Telemetry
from api.tokens import TokenService
from audit.log import RequestAccessLog
from authz.gate import Gate
from authz.probe import NO_PROBE, Probe
from authz.purpose import PurposeNotAllowed, resolve_purpose
from authz.subject import Subject
from domain.disclosure import AccessKind
from domain.keys import KeyRing

PURPOSE_HEADER = "X-Purpose-Of-Use"
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{8,64}$")


class Unauthenticated(StrawberryGraphQLError):
    def __init__(self) -> None:
        super().__init__(
            "请先登录 (authentication required)", extensions={"code": "UNAUTHENTICATED"}
        )


class PurposeRefused(StrawberryGraphQLError):
    def __init__(self) -> None:
        super().__init__(
            "声明的使用目的无效或不适用于您的角色 (purpose of use not allowed)",
            extensions={"code": "FORBIDDEN_PURPOSE", "header": PURPOSE_HEADER},
        )


@dataclass
class RequestContext:
    subject: Subject
    settings: Settings
    request_id: str
    access_log: RequestAccessLog
    _gate: Gate
    _session: AsyncSession
    loaders: Loaders = field(init=False)
    request: HTTPConnection | None = None
    """The HTTP request, or the WebSocket of a subscription's delivery (set by the app)."""
    response: Response | WebSocket | None = None
    purpose_refused: bool = False
    lookup_limiter: RateLimiter | None = None
    engine: AsyncEngine | None = None
    """For sign-in, which runs before there is a subject (api.identity); set by the app."""
    tokens: TokenService | None = None
    telemetry: Telemetry = field(default_factory=Telemetry)

    def __post_init__(self) -> None:
        self.loaders = Loaders(self._gate)

    @property
    def gate(self) -> Gate:
        """The enforcement point. Unauthenticated callers get nothing, not an empty scope."""
        if not self.subject.authenticated:
            raise Unauthenticated()
        if self.purpose_refused:
            raise PurposeRefused()
        return self._gate

    def identity(self) -> tuple[AsyncEngine, TokenService]:
        """The engine and token service sign-in needs (it runs before there is a subject). Set
        by the HTTP view; a context built without them cannot sign anyone in."""
        if self.engine is None or self.tokens is None:
            raise RuntimeError("this request context has no engine or token service")
        return self.engine, self.tokens

    async def finish(self) -> None:
        """Write the access log and commit. Raises if the log cannot be written (fail closed)."""
        t = self.telemetry
        role = ",".join(sorted(self.subject.roles)) or "anonymous"
        for d in self.access_log.pending:
            if d.kind is AccessKind.DENIED:
                t.denials.add(1, {"role": role, "reason": _metric_label(d.reason or "denied")})
        started = time.perf_counter()
        with t.span("audit.write", {"audit.events": len(self.access_log.pending)}):
            await self.access_log.flush(self._session)
            await self._session.commit()
        t.audit_write.record(time.perf_counter() - started)

    async def abort(self) -> None:
        await self._session.rollback()

    async def close(self) -> None:
        await self._session.close()


def new_request_id(header: str | None) -> str:
    if header and _REQUEST_ID.match(header):
        return header
    return uuid.uuid4().hex


def build_context(
    *,
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
    subject: Subject,
    request_id: str,
    client_address: str | None = None,
    purpose: str | None = None,
    user_agent: str | None = None,
    trace_id: str | None = None,
    hash_value: Callable[[object], str] | None = None,
    keys: KeyRing | None = None,
    probe: Probe = NO_PROBE,
    protection: Protection,
) -> RequestContext:
    session = sessions()
    refused = False
    try:
        resolved = resolve_purpose(subject.roles, purpose)
    except PurposeNotAllowed:
        resolved, refused = resolve_purpose(subject.roles, None), True
    access_log = protection.access_log(
        request_id=request_id,
        actor=subject.actor,
        client_address=client_address,
        purpose=resolved.value,
        user_agent=(user_agent or None) and user_agent[:200],
        trace_id=trace_id,
        hash_alg=settings.audit_hash,
        hash_value=hash_value,
    )
    gate = Gate(
        session=session,
        subject=subject,
        policy=protection.policy,
        sink=access_log,
        keys=keys,
        probe=probe,
        sealer=protection.sealer,
    )
    return RequestContext(
        subject=subject,
        settings=settings,
        request_id=request_id,
        access_log=access_log,
        _gate=gate,
        _session=session,
        purpose_refused=refused,
    )


_LABEL = re.compile(r"^[a-z0-9_:.-]{1,40}$")


def _metric_label(reason: str) -> str:
    """A denial reason as a metric label: codes only (bounded cardinality, never free text)."""
    reason = reason.lower()  # sign-in refusals carry their error code (INVALID_CREDENTIALS)
    return reason if _LABEL.match(reason) else "other"
