"""The per-request context: one subject, one session, one gate, one access log, its loaders.

Built once per request and never shared: dataloader caches and the session belong to one viewer.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from strawberry.exceptions import StrawberryGraphQLError

from api.graphql.loaders import Loaders
from api.ratelimit import RateLimiter
from api.settings import Settings
from audit.log import RequestAccessLog
from authz.gate import Gate
from authz.policy import Policy
from authz.purpose import PurposeNotAllowed, resolve_purpose
from authz.subject import Subject
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
    request: Any = None
    response: Any = None
    purpose_refused: bool = False
    lookup_limiter: RateLimiter | None = None
    engine: Any = None
    """For sign-in, which runs before there is a subject (api.identity)."""
    tokens: Any = None

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

    async def finish(self) -> None:
        """Write the access log and commit. Raises if the log cannot be written (fail closed)."""
        await self.access_log.flush(self._session)
        await self._session.commit()

    async def abort(self) -> None:
        await self._session.rollback()

    async def close(self) -> None:
        await self._session.close()


_TRACEPARENT = re.compile(r"^[0-9a-f]{2}-([0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}$")


def trace_id_of(traceparent: str | None) -> str | None:
    """The W3C trace id of the caller's ``traceparent`` header, if well formed."""
    match = _TRACEPARENT.match(traceparent or "")
    return match.group(1) if match else None


def new_request_id(header: str | None) -> str:
    if header and _REQUEST_ID.match(header):
        return header
    return uuid.uuid4().hex


def build_context(
    *,
    sessions: async_sessionmaker[AsyncSession],
    policy: Policy,
    settings: Settings,
    subject: Subject,
    request_id: str,
    client_address: str | None = None,
    purpose: str | None = None,
    user_agent: str | None = None,
    traceparent: str | None = None,
    hash_value: Callable[[object], str] | None = None,
    keys: KeyRing | None = None,
) -> RequestContext:
    session = sessions()
    refused = False
    try:
        resolved = resolve_purpose(subject.roles, purpose)
    except PurposeNotAllowed:
        resolved, refused = resolve_purpose(subject.roles, None), True
    access_log = RequestAccessLog(
        request_id=request_id,
        actor=subject.actor,
        client_address=client_address,
        purpose=resolved.value,
        user_agent=(user_agent or None) and user_agent[:200],
        trace_id=trace_id_of(traceparent),
        hash_alg=settings.audit_hash,
        hash_value=hash_value,
    )
    gate = Gate(session=session, subject=subject, policy=policy, sink=access_log, keys=keys)
    return RequestContext(
        subject=subject,
        settings=settings,
        request_id=request_id,
        access_log=access_log,
        _gate=gate,
        _session=session,
        purpose_refused=refused,
    )
