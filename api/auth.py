"""Authentication: a bearer token becomes an ``authz.Subject`` on ``request.user``.

Role and unit are re-read from the database on every request, so a change takes effect on the next
request rather than when the token expires.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.authentication import (
    AuthCredentials,
    AuthenticationBackend,
    AuthenticationError,
    BaseUser,
)
from starlette.requests import HTTPConnection
from starlette.responses import JSONResponse

from api.tokens import InvalidToken, TokenService
from authz.subject import Subject
from domain.session import system_session
from domain.staff import Staff
from domain.units import Unit


class SubjectUser(BaseUser):
    def __init__(self, subject: Subject) -> None:
        self.subject = subject

    @property
    def is_authenticated(self) -> bool:
        return self.subject.authenticated

    @property
    def display_name(self) -> str:
        return self.subject.username


async def load_subject(engine: AsyncEngine, staff_id: int, token_id: str | None) -> Subject | None:
    """The current subject for a staff id, or None if the account is gone or disabled."""
    async with system_session(engine, reason="authentication") as session:
        row = (
            await session.execute(
                select(Staff, Unit).join(Unit, Unit.id == Staff.unit_id).where(Staff.id == staff_id)
            )
        ).first()
        if row is None or not row[0].active:
            return None
        staff, unit = row
        area_path = unit.path
        if unit.area_unit_id is not None:
            area = await session.get(Unit, unit.area_unit_id)
            area_path = area.path if area else None
        return Subject(
            staff_id=staff.id,
            username=staff.username,
            unit_id=unit.id,
            unit_path=unit.path,
            jurisdiction_path=area_path or None,
            roles=staff.roles,
            token_id=token_id,
        )


class TokenBackend(AuthenticationBackend):
    def __init__(self, tokens: TokenService, engine: AsyncEngine) -> None:
        self.tokens = tokens
        self.engine = engine

    async def authenticate(self, conn: HTTPConnection) -> tuple[AuthCredentials, BaseUser] | None:
        header = conn.headers.get("authorization")
        if not header:
            return None
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise AuthenticationError("malformed authorization header")
        try:
            claims = self.tokens.verify(token.strip())
            subject = await load_subject(self.engine, int(claims.subject), claims.token_id)
        except (InvalidToken, ValueError):
            raise AuthenticationError("invalid token") from None
        if subject is None:
            raise AuthenticationError("account disabled")
        return AuthCredentials(["authenticated"]), SubjectUser(subject)


def on_auth_error(_conn: HTTPConnection, _exc: Exception) -> JSONResponse:
    """401 in GraphQL's error shape, with no hint of why (expired, forged, disabled...)."""
    return JSONResponse(
        {
            "data": None,
            "errors": [
                {
                    "message": "身份验证失败，请重新登录 (authentication required)",
                    "extensions": {"code": "UNAUTHENTICATED"},
                }
            ],
        },
        status_code=401,
        headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
    )
