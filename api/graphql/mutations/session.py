"""Staff sessions: sign in, refresh, sign out. The only mutations open to anonymous callers."""

from __future__ import annotations

import strawberry

from api.graphql.errors import UserError
from api.graphql.types.base import ctx
from api.identity import IdentityError, refresh_session, sign_in, sign_out
from domain.disclosure import AccessKind, Disclosure
from domain.errors import ErrorCode


@strawberry.type(description="A session: send the access token as `Authorization: Bearer ...`.")
class SessionPayload:
    access_token: str | None = None
    refresh_token: str | None = strawberry.field(
        default=None, description="Single use: refreshing returns a new one."
    )
    expires_in: int | None = strawberry.field(default=None, description="Seconds.")
    errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.type
class SignOutPayload:
    ok: bool
    errors: list[UserError]


def _error(exc: IdentityError) -> list[UserError]:
    return [UserError(code=ErrorCode(exc.code), message=exc.message, field=None)]


@strawberry.type
class SessionMutations:
    @strawberry.mutation(description="Sign in with a username and password.")
    async def sign_in(self, info: strawberry.Info, username: str, password: str) -> SessionPayload:
        c = ctx(info)
        try:
            session = await sign_in(*c.identity(), username.strip(), password)
        except IdentityError as exc:
            c.access_log.record(Disclosure(AccessKind.DENIED, "session", None, reason=exc.code))
            return SessionPayload(errors=_error(exc))
        c.access_log.record(Disclosure(AccessKind.WRITE, "session", None, reason="sign_in"))
        return SessionPayload(
            access_token=session.access_token,
            refresh_token=session.refresh_token,
            expires_in=session.expires_in,
        )

    @strawberry.mutation(description="Exchange a refresh token for a new session (it rotates).")
    async def refresh_session(self, info: strawberry.Info, refresh_token: str) -> SessionPayload:
        c = ctx(info)
        try:
            session = await refresh_session(*c.identity(), refresh_token)
        except IdentityError as exc:
            c.access_log.record(Disclosure(AccessKind.DENIED, "session", None, reason=exc.code))
            return SessionPayload(errors=_error(exc))
        c.access_log.record(Disclosure(AccessKind.WRITE, "session", None, reason="refresh"))
        return SessionPayload(
            access_token=session.access_token,
            refresh_token=session.refresh_token,
            expires_in=session.expires_in,
        )

    @strawberry.mutation(description="End the session: the refresh token and this access token.")
    async def sign_out(
        self, info: strawberry.Info, refresh_token: str | None = None
    ) -> SignOutPayload:
        c = ctx(info)
        subject = c.subject
        await sign_out(c.identity()[0], refresh_token, subject.token_id, subject.token_expires)
        c.access_log.record(Disclosure(AccessKind.WRITE, "session", None, reason="sign_out"))
        return SignOutPayload(ok=True, errors=[])
