"""The access-log table. Append-only; the hash chain and signed checkpoints build on it."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, BigInteger, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from domain.base import Base, UTCDateTime, utcnow

AuditId = BigInteger().with_variant(Integer(), "sqlite")


class AccessEvent(Base):
    __tablename__ = "access_events"
    __table_args__ = (
        Index("ix_access_events_entity", "entity", "entity_id"),
        Index("ix_access_events_actor", "actor_staff_id", "occurred_at"),
    )

    id: Mapped[int] = mapped_column(AuditId, primary_key=True)
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    request_id: Mapped[str] = mapped_column(String(64), index=True)
    operation: Mapped[str | None] = mapped_column(String(100))
    actor_staff_id: Mapped[int | None] = mapped_column(
        BigInteger().with_variant(Integer(), "sqlite")
    )
    actor_username: Mapped[str] = mapped_column(String(64))
    actor_unit_id: Mapped[int | None] = mapped_column(
        BigInteger().with_variant(Integer(), "sqlite")
    )
    actor_roles: Mapped[str] = mapped_column(String(200))
    token_id: Mapped[str | None] = mapped_column(String(64))
    purpose: Mapped[str] = mapped_column(String(32))
    kind: Mapped[str] = mapped_column(String(16))
    entity: Mapped[str] = mapped_column(String(32))
    entity_id: Mapped[int | None] = mapped_column(BigInteger().with_variant(Integer(), "sqlite"))
    fields: Mapped[list[str]] = mapped_column(JSON)
    redacted: Mapped[list[str]] = mapped_column(JSON)
    field_classes: Mapped[list[str]] = mapped_column(JSON)
    relations: Mapped[list[str]] = mapped_column(JSON)
    reason: Mapped[str | None] = mapped_column(String(100))
    client_address: Mapped[str | None] = mapped_column(String(64))
