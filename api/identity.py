"""Sign-in, sessions and partner clients: the only code that handles credentials.

* Staff sign in with a password (argon2id); five failures for a username within fifteen minutes
  lock it for the rest of that window, whether or not the account exists (so lockout reveals
  nothing). A session is a short access token plus a refresh token that rotates on every use;
  presenting an already-used refresh token revokes its whole family (it was replayed or stolen).
  Signing out revokes the family and the current access token.
* Partner agencies' clients exchange a secret (argon2id, shown once, rotatable) for a 10-minute
  token by the OAuth client-credentials grant. What a client may see and do lives in its row
  (scopes) and in the referral and consent tables, never in the token. The documents a client
  may run (persisted queries, and the staff allow-list) are read here too, for the guard's cache
  (``api.graphql.persisted``).

Runs in system sessions: reason "authentication" (no subject exists yet), and "persisted query
registry" for the documents (the guard's own read, before an operation runs).
"""

from __future__ import annotations

import asyncio
import hashlib
import ipaddress
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from api.tokens import TokenService
from domain.base import utcnow
from domain.identity import (
    LOCKOUT_DURATION,
    LOCKOUT_THRESHOLD,
    LoginAttempt,
    PartnerClient,
    PersistedQuery,
    RefreshToken,
    RevokedAccessToken,
)
from domain.session import rows_matched, system_session
from domain.staff import Staff

REFRESH_TTL = timedelta(hours=12)
PARTNER_TTL = 600
CLIENT_SCOPES = frozenset(
    {
        "read:basic",
        "read:identity",
        "read:contact",
        "read:case_admin",
        "read:narrative",
        "read:id_number",
        "read:clinical",
        "read:family_circumstance",
        "op:read_referred_cases",
        "op:record_intervention",
        "op:create_alert",
    }
)
_hasher = PasswordHasher()  # argon2id, library defaults (RFC 9106 second recommendation)


class IdentityError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(code)
        self.code = code
        self.message = message


BAD_CREDENTIALS = IdentityError("INVALID_CREDENTIALS", "用户名或密码错误")
LOCKED = IdentityError("ACCOUNT_LOCKED", "登录失败次数过多，请15分钟后再试")
BAD_REFRESH = IdentityError("INVALID_REFRESH_TOKEN", "会话已失效，请重新登录")


@dataclass(frozen=True)
class Session:
    access_token: str
    refresh_token: str
    expires_in: int


def hash_secret(secret: str) -> str:
    return _hasher.hash(secret)


def check_secret(stored: str | None, given: str) -> bool:
    if not stored:
        _hasher.hash(given)  # same cost whether or not there is a hash: no timing oracle
        return False
    try:
        return _hasher.verify(stored, given)
    except (VerificationError, InvalidHashError):
        return False


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def _failures(s: AsyncSession, username: str, now: datetime) -> int:
    return int(
        (
            await s.execute(
                select(func.count())
                .select_from(LoginAttempt)
                .where(LoginAttempt.username == username, LoginAttempt.at > now - LOCKOUT_DURATION)
            )
        ).scalar_one()
    )


async def sign_in(
    engine: AsyncEngine, tokens: TokenService, username: str, password: str
) -> Session:
    now = utcnow()
    async with system_session(engine, reason="authentication") as s:
        # Count this attempt before checking it, committed, so parallel guesses cannot all slip
        # in under the limit; a success clears the count.
        await s.execute(insert(LoginAttempt).values(username=username[:64], at=now))
        await s.commit()
        if await _failures(s, username, now) > LOCKOUT_THRESHOLD:
            raise LOCKED
        staff = (
            await s.execute(select(Staff).where(Staff.username == username))
        ).scalar_one_or_none()
        stored = staff.password_hash if staff else None
        ok = await asyncio.to_thread(check_secret, stored, password)  # ~0.1 s of argon2
        if not ok or staff is None or not staff.active:
            raise BAD_CREDENTIALS
        await s.execute(delete(LoginAttempt).where(LoginAttempt.username == username))
        session = await _new_session(s, tokens, staff, family=secrets.token_hex(16), now=now)
        await s.commit()
        return session


async def _new_session(
    s: AsyncSession, tokens: TokenService, staff: Staff, *, family: str, now: datetime
) -> Session:
    refresh = secrets.token_urlsafe(32)
    await s.execute(
        insert(RefreshToken).values(
            staff_id=staff.id,
            token_hash=_digest(refresh),
            family=family,
            issued_at=now,
            expires_at=now + REFRESH_TTL,
        )
    )
    access = tokens.issue(
        staff_id=staff.id,
        username=staff.username,
        unit_id=staff.unit_id,
        roles=sorted(r.value for r in staff.roles),
    )
    return Session(access, refresh, tokens.ttl_seconds)


async def refresh_session(engine: AsyncEngine, tokens: TokenService, refresh: str) -> Session:
    now = utcnow()
    async with system_session(engine, reason="authentication") as s:
        row = (
            await s.execute(select(RefreshToken).where(RefreshToken.token_hash == _digest(refresh)))
        ).scalar_one_or_none()
        if row is None or row.revoked_at is not None or row.expires_at <= now:
            raise BAD_REFRESH
        if row.used_at is not None:  # replay: end every session of this family
            await _revoke_family(s, row.family, now)
            await s.commit()
            raise BAD_REFRESH
        staff = (await s.execute(select(Staff).where(Staff.id == row.staff_id))).scalar_one()
        if not staff.active:
            raise BAD_REFRESH
        claimed = await s.execute(
            update(RefreshToken)
            .where(
                RefreshToken.id == row.id,
                RefreshToken.used_at.is_(None),
                RefreshToken.revoked_at.is_(None),
            )
            .values(used_at=now)
        )
        if rows_matched(claimed) != 1:  # a parallel refresh used it first: treat as a replay
            await s.rollback()
            await _revoke_family(s, row.family, now)
            await s.commit()
            raise BAD_REFRESH
        session = await _new_session(s, tokens, staff, family=row.family, now=now)
        await s.commit()
        return session


async def _revoke_family(s: AsyncSession, family: str, now: datetime) -> None:
    await s.execute(
        update(RefreshToken)
        .where(RefreshToken.family == family, RefreshToken.revoked_at.is_(None))
        .values(revoked_at=now)
    )


async def sign_out(
    engine: AsyncEngine, refresh: str | None, access_jti: str | None, access_expires: int | None
) -> None:
    now = utcnow()
    async with system_session(engine, reason="authentication") as s:
        if refresh:
            row = (
                await s.execute(
                    select(RefreshToken).where(RefreshToken.token_hash == _digest(refresh))
                )
            ).scalar_one_or_none()
            if row is not None:
                await _revoke_family(s, row.family, now)
        if access_jti:
            await revoke_access_token(s, access_jti, access_expires, now)
        await s.commit()


async def revoke_access_token(
    s: AsyncSession, jti: str, expires: int | None, now: datetime
) -> None:
    until = datetime.fromtimestamp(expires, now.tzinfo) if expires else now + timedelta(days=1)
    exists = (
        await s.execute(select(RevokedAccessToken.jti).where(RevokedAccessToken.jti == jti))
    ).first()
    if exists is None:
        await s.execute(insert(RevokedAccessToken).values(jti=jti, expires_at=until))


async def set_password(engine: AsyncEngine, username: str, password: str) -> bool:
    if len(password) < 12:
        raise IdentityError("WEAK_PASSWORD", "密码至少12位")
    async with system_session(engine, reason="operator password reset") as s:
        staff_id = (
            await s.execute(select(Staff.id).where(Staff.username == username))
        ).scalar_one_or_none()
        if staff_id is None:
            return False
        await s.execute(
            update(Staff).where(Staff.id == staff_id).values(password_hash=hash_secret(password))
        )
        # A new password ends every session of the old one, and clears the lockout.
        await s.execute(
            update(RefreshToken)
            .where(RefreshToken.staff_id == staff_id, RefreshToken.revoked_at.is_(None))
            .values(revoked_at=utcnow())
        )
        await s.execute(delete(LoginAttempt).where(LoginAttempt.username == username))
        await s.commit()
        return True


# -- partner clients -------------------------------------------------------------------------


def check_scopes(scopes: list[str]) -> list[str]:
    unknown = sorted(set(scopes) - CLIENT_SCOPES)
    if unknown:
        raise IdentityError("INVALID_SCOPE", f"未知的权限范围：{', '.join(unknown)}")
    if "op:record_intervention" in scopes and "op:read_referred_cases" not in scopes:
        # Recording on a referred case means finding it: a write-only client finds nothing
        # but the alerts it raised.
        raise IdentityError(
            "INVALID_SCOPE", "op:record_intervention 需要同时授予 op:read_referred_cases"
        )
    return sorted(set(scopes))


def new_client_secret() -> str:
    return secrets.token_urlsafe(32)


async def exchange_client_credentials(
    engine: AsyncEngine, tokens: TokenService, client_id: str, secret: str, address: str | None
) -> tuple[str, int, list[str]]:
    """OAuth 2.0 client-credentials grant (RFC 6749 §4.4): a short token for an active client."""
    now = utcnow()
    async with system_session(engine, reason="authentication") as s:
        client = (
            await s.execute(select(PartnerClient).where(PartnerClient.client_id == client_id))
        ).scalar_one_or_none()
        ok = await asyncio.to_thread(check_secret, client.secret_hash if client else None, secret)
        if not ok or client is None or not client.active(now):
            raise IdentityError("invalid_client", "client authentication failed")
        if not address_allowed(client.allowed_addresses, address):
            raise IdentityError("invalid_client", "client authentication failed")
        token = tokens.issue_client(client_id=client.client_id, ttl_seconds=PARTNER_TTL)
        return token, PARTNER_TTL, client.scopes


async def registered_documents(engine: AsyncEngine, client_pk: int | None) -> dict[str, str]:
    """SHA-256 to document, registered for one partner client (``None``: the staff allow-list)."""
    async with system_session(engine, reason="persisted query registry") as s:
        owner = (
            PersistedQuery.client_id.is_(None)
            if client_pk is None
            else PersistedQuery.client_id == client_pk
        )
        rows = (
            await s.execute(select(PersistedQuery.sha256, PersistedQuery.document).where(owner))
        ).all()
    return {sha: doc for sha, doc in rows}


def address_allowed(allowed: list[str] | None, address: str | None) -> bool:
    if not allowed:
        return True
    if address is None:
        return False
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in ipaddress.ip_network(net, strict=False) for net in allowed)
