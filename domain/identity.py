"""Credentials and sessions: staff passwords, refresh tokens, revoked access tokens, and the
partner agencies' API clients with the persisted queries they may run.

Secrets are stored only as hashes (argon2id for passwords and client secrets, SHA-256 for
high-entropy refresh tokens) and are never readable through the API (class ``secret``).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import JSON, ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from domain.base import Base, Id, Protected, UTCDateTime, utcnow
from domain.classification import FieldClass, classified

LOCKOUT_THRESHOLD = 5
LOCKOUT_DURATION = timedelta(minutes=15)


class RefreshToken(Base):
    """One refresh token; rotation links each to its successor within a family. Presenting a
    rotated (already used) token revokes the whole family: it was stolen or replayed."""

    __tablename__ = "refresh_tokens"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    staff_id: Mapped[int] = mapped_column(ForeignKey("staff.id"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    family: Mapped[str] = mapped_column(String(32), index=True)
    issued_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class RevokedAccessToken(Base):
    """A revoked access token (by ``jti``) until it would have expired anyway."""

    __tablename__ = "revoked_access_tokens"

    jti: Mapped[str] = mapped_column(String(64), primary_key=True)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)


class PartnerClient(Protected, Base):
    """A partner agency's machine client: what it may do lives here, not in its tokens."""

    __tablename__ = "partner_clients"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    client_id: Mapped[str] = mapped_column(
        String(64), unique=True, info=classified(FieldClass.BASIC)
    )
    name: Mapped[str] = mapped_column(String(100), info=classified(FieldClass.BASIC))
    unit_id: Mapped[int] = mapped_column(
        ForeignKey("units.id"), index=True, info=classified(FieldClass.BASIC)
    )
    secret_hash: Mapped[str] = mapped_column(String(200), info=classified(FieldClass.SECRET))
    scopes: Mapped[list[str]] = mapped_column(JSON, info=classified(FieldClass.BASIC))
    """Field classes it may read (``read:narrative``) and operations (``op:create_alert``)."""
    audience: Mapped[str] = mapped_column(String(100), info=classified(FieldClass.BASIC))
    allowed_addresses: Mapped[list[str] | None] = mapped_column(
        JSON, info=classified(FieldClass.BASIC)
    )
    created_at: Mapped[datetime] = mapped_column(
        UTCDateTime, default=utcnow, info=classified(FieldClass.BASIC)
    )
    expires_at: Mapped[datetime | None] = mapped_column(
        UTCDateTime, info=classified(FieldClass.BASIC)
    )
    revoked_at: Mapped[datetime | None] = mapped_column(
        UTCDateTime, info=classified(FieldClass.BASIC)
    )
    secret_rotated_at: Mapped[datetime | None] = mapped_column(
        UTCDateTime, info=classified(FieldClass.BASIC)
    )

    def active(self, now: datetime) -> bool:
        return self.revoked_at is None and (self.expires_at is None or self.expires_at > now)


class PersistedQuery(Base):
    """A GraphQL document registered by its SHA-256 for one partner client (or, with no client,
    on the staff allow-list used in production mode)."""

    __tablename__ = "persisted_queries"
    __table_args__ = (UniqueConstraint("client_id", "sha256"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    client_id: Mapped[int | None] = mapped_column(ForeignKey("partner_clients.id"), index=True)
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    name: Mapped[str | None] = mapped_column(String(100))
    document: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class LoginAttempt(Base):
    """A failed sign-in, by the username tried (known or not, so lockout reveals nothing about
    which accounts exist). Failures older than the lockout window no longer count."""

    __tablename__ = "login_failures"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    username: Mapped[str] = mapped_column(String(64), index=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
