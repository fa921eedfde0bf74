"""The access-log record (and its chain head and signed checkpoints), as plain models.

The *record* lives in the domain so the privacy gate can scope auditors' reads of it like any
other entity; everything the log *does* — chaining, checkpoints, verification, export, retention —
lives in ``audit/``. Rows are append-only: database triggers refuse UPDATE and DELETE (and
TRUNCATE on PostgreSQL), except a purge the retention command permits explicitly.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, BigInteger, Boolean, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from domain.base import Base, Id, Protected, UTCDateTime, utcnow
from domain.classification import FieldClass, classified

BigId = BigInteger().with_variant(Integer(), "sqlite")
AUDIT = classified(FieldClass.AUDIT)


class AccessEvent(Protected, Base):
    """One disclosure (read, search, write or denial) of one record, chained to its predecessor."""

    __tablename__ = "access_events"
    __table_args__ = (
        Index("ix_access_events_entity", "entity", "entity_id"),
        Index("ix_access_events_actor", "actor_staff_id", "occurred_at"),
        Index("ix_access_events_person", "person_id", "occurred_at"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    seq: Mapped[int] = mapped_column(BigId, unique=True, info=AUDIT)
    """Position in the hash chain: contiguous from 1, assigned under the chain-head lock."""
    occurred_at: Mapped[datetime] = mapped_column(
        UTCDateTime, default=utcnow, index=True, info=AUDIT
    )
    request_id: Mapped[str] = mapped_column(String(64), index=True, info=AUDIT)
    trace_id: Mapped[str | None] = mapped_column(String(32), info=AUDIT)
    operation: Mapped[str | None] = mapped_column(String(100), info=AUDIT)
    operation_hash: Mapped[str | None] = mapped_column(String(64), info=AUDIT)
    actor_staff_id: Mapped[int | None] = mapped_column(BigId, info=AUDIT)
    actor_username: Mapped[str] = mapped_column(String(64), index=True, info=AUDIT)
    actor_unit_id: Mapped[int | None] = mapped_column(BigId, index=True, info=AUDIT)
    actor_roles: Mapped[str] = mapped_column(String(200), info=AUDIT)
    token_id: Mapped[str | None] = mapped_column(String(64), info=AUDIT)
    purpose: Mapped[str] = mapped_column(String(32), info=AUDIT)
    kind: Mapped[str] = mapped_column(String(16), info=AUDIT)
    outcome: Mapped[str] = mapped_column(String(16), info=AUDIT)
    """permitted | partly_redacted | denied"""
    entity: Mapped[str] = mapped_column(String(32), info=AUDIT)
    entity_id: Mapped[int | None] = mapped_column(BigId, info=AUDIT)
    person_id: Mapped[int | None] = mapped_column(BigId, info=AUDIT)
    """The person the disclosed record is about, when there is one (for "who saw my record")."""
    fields: Mapped[list[str]] = mapped_column(JSON, info=AUDIT)
    redacted: Mapped[list[str]] = mapped_column(JSON, info=AUDIT)
    field_classes: Mapped[list[str]] = mapped_column(JSON, info=AUDIT)
    relations: Mapped[list[str]] = mapped_column(JSON, info=AUDIT)
    changes: Mapped[dict[str, list[str]] | None] = mapped_column(JSON, info=AUDIT)
    """For writes: field → [before, after] keyed hashes, never values."""
    break_glass: Mapped[bool] = mapped_column(Boolean, default=False, index=True, info=AUDIT)
    reason: Mapped[str | None] = mapped_column(String(100), info=AUDIT)
    client_address: Mapped[str | None] = mapped_column(String(64), info=AUDIT)
    user_agent: Mapped[str | None] = mapped_column(String(200), info=AUDIT)
    hash_alg: Mapped[str] = mapped_column(String(16), info=AUDIT)
    prev_hash: Mapped[str] = mapped_column(String(64), info=AUDIT)
    hash: Mapped[str] = mapped_column(String(64), info=AUDIT)


class AuditChainHead(Base):
    """A single row: the last sequence number and hash. Appending locks it, so concurrent
    requests extend one chain with no forks and no gaps."""

    __tablename__ = "audit_chain_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    seq: Mapped[int] = mapped_column(BigId, default=0)
    head_hash: Mapped[str] = mapped_column(String(64))
    hash_alg: Mapped[str] = mapped_column(String(16))


class AuditCheckpoint(Base):
    """A signed statement of (sequence, head hash) in the C2SP signed-note format."""

    __tablename__ = "audit_checkpoints"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    seq: Mapped[int] = mapped_column(BigId, index=True)
    head_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    reason: Mapped[str] = mapped_column(String(32))
    """periodic | purge | manual"""
    note: Mapped[str] = mapped_column(Text)
    """The signed note, verbatim, as copied out to places the database operator cannot rewrite."""


class AuditPurgePermit(Base):
    """Present only inside a retention purge's transaction: the delete trigger checks for it."""

    __tablename__ = "audit_purge_permits"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    before_seq: Mapped[int] = mapped_column(BigId)
