"""Authentication: a bearer token becomes an ``authz.Subject`` on ``request.user``.

Staff tokens carry the staff id; partner clients' tokens the client id. Either way the subject is
rebuilt from the database on every request — roles, unit, a client's scopes and status, and
whether the token was revoked — so a change or a revocation takes effect on the next request.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from starlette.authentication import (
    AuthCredentials,
    AuthenticationBackend,
    AuthenticationError,
    BaseUser,
)
from starlette.requests import HTTPConnection
from starlette.responses import JSONResponse

from api.identity import address_allowed
from api.telemetry import Telemetry
from api.tokens import InvalidToken, TokenClaims, TokenService
from authz.subject import Subject
from domain.base import utcnow
from domain.classification import FieldClass
from domain.identity import PartnerClient, RevokedAccessToken
from domain.session import system_session
from domain.staff import Role, Staff
from domain.units import Unit

TOKEN_PATH = "/oauth/token"  # noqa: S105 - a URL path


class SubjectUser(BaseUser):
    def __init__(self, subject: Subject) -> None:
        self.subject = subject

    @property
    def is_authenticated(self) -> bool:
        return self.subject.authenticated

    @property
    def display_name(self) -> str:
        return self.subject.username


async def _unit_paths(session: AsyncSession, unit: Unit) -> str | None:
    if unit.area_unit_id is None:
        return unit.path
    area = (await session.execute(select(Unit).where(Unit.id == unit.area_unit_id))).scalar_one()
    return area.path or None


async def _staff_subject(session: AsyncSession, claims: TokenClaims) -> Subject | None:
    who = (
        Staff.username == claims.username
        if claims.subject.startswith("external:")
        else Staff.id == int(claims.subject)
    )
    row = (
        await session.execute(select(Staff, Unit).join(Unit, Unit.id == Staff.unit_id).where(who))
    ).first()
    if row is None or not row[0].active:
        return None
    staff, unit = row
    return Subject(
        staff_id=staff.id,
        username=staff.username,
        unit_id=unit.id,
        unit_path=unit.path,
        jurisdiction_path=await _unit_paths(session, unit),
        roles=frozenset(staff.roles),
        token_id=claims.token_id,
        token_expires=claims.expires_at,
    )


async def _client_subject(
    session: AsyncSession, claims: TokenClaims, address: str | None
) -> Subject | None:
    row = (
        await session.execute(
            select(PartnerClient, Unit)
            .join(Unit, Unit.id == PartnerClient.unit_id)
            .where(PartnerClient.client_id == claims.client_id)
        )
    ).first()
    if row is None:
        return None
    client, unit = row
    if not client.active(utcnow()) or not address_allowed(client.allowed_addresses, address):
        return None
    return Subject(
        staff_id=None,
        username=f"client:{client.client_id}",
        unit_id=unit.id,
        unit_path=unit.path,
        jurisdiction_path=None,
        roles=frozenset({Role.PARTNER}),
        token_id=claims.token_id,
        token_expires=claims.expires_at,
        client_id=client.client_id,
        client_pk=client.id,
        class_cap=_class_cap(client.scopes),
        operations=frozenset(s for s in client.scopes if s.startswith("op:")),
        read_relations=None if READ_OP in client.scopes else frozenset({"creator"}),
    )


READ_OP = "op:read_referred_cases"


def _class_cap(scopes: list[str]) -> frozenset[FieldClass] | None:
    """With the read operation, the classes its ``read:`` scopes name. Without it, a client
    reads nothing through referrals; if it may raise alerts, it reads back the alerts it raised
    (``read_relations``), so the cap is left to the policy's lines for that relation."""
    if READ_OP in scopes:
        return frozenset(FieldClass(s[5:]) for s in scopes if s.startswith("read:"))
    return None if "op:create_alert" in scopes else frozenset()


async def load_subject(
    engine: AsyncEngine, claims: TokenClaims, address: str | None = None
) -> Subject | None:
    """The current subject for verified claims, or None if revoked, disabled or gone."""
    async with system_session(engine, reason="authentication") as session:
        revoked = (
            await session.execute(
                select(RevokedAccessToken.jti).where(RevokedAccessToken.jti == claims.token_id)
            )
        ).first()
        if revoked is not None:
            return None
        if claims.client_id is not None:
            return await _client_subject(session, claims, address)
        return await _staff_subject(session, claims)


class TokenBackend(AuthenticationBackend):
    def __init__(
        self, tokens: TokenService, engine: AsyncEngine, telemetry: Telemetry | None = None
    ) -> None:
        self.tokens = tokens
        self.engine = engine
        self.telemetry = telemetry or Telemetry()

    def _reject(self, reason: str) -> AuthenticationError:
        """Counted by reason for operators; the caller is told nothing more than "401"."""
        self.telemetry.token_rejections.add(1, {"reason": reason})
        return AuthenticationError(reason)

    async def authenticate(self, conn: HTTPConnection) -> tuple[AuthCredentials, BaseUser] | None:
        header = conn.headers.get("authorization")
        if not header or conn.url.path == TOKEN_PATH:  # the token endpoint authenticates clients
            return None
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise self._reject("malformed")
        try:
            claims = self.tokens.verify(token.strip())
            address = conn.client.host if conn.client else None
            subject = await load_subject(self.engine, claims, address)
        except (InvalidToken, ValueError):
            raise self._reject("invalid") from None
        if subject is None:
            raise self._reject("revoked_or_disabled")
        return AuthCredentials(["authenticated"]), SubjectUser(subject)


def on_auth_error(conn: HTTPConnection, _exc: Exception) -> JSONResponse:
    """401 in GraphQL's error shape, with no hint of why (expired, forged, revoked...), and the
    trace id support needs to find the refusal."""
    extensions = {"code": "UNAUTHENTICATED"}
    trace_id = conn.scope.get("state", {}).get("trace_id")
    if trace_id:
        extensions["traceId"] = trace_id
    return JSONResponse(
        {
            "data": None,
            "errors": [
                {
                    "message": "身份验证失败，请重新登录 (authentication required)",
                    "extensions": extensions,
                }
            ],
        },
        status_code=401,
        headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
    )
