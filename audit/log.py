"""The per-request access log: buffer every disclosure, chain them, write them in one batch.

The API flushes the batch before any data leaves the server; if the write fails the response is
replaced by an error (fail closed). One multi-row INSERT per flush, never one per field. The
chain head row is updated first, which takes its row lock (PostgreSQL) or the write lock
(SQLite): concurrent requests therefore append one after another to a single chain.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from audit import checkpoints
from audit.chain import GENESIS, link
from domain.access_log import AccessEvent, AuditChainHead
from domain.base import utcnow
from domain.disclosure import AccessKind, Actor, Disclosure

HEAD_ID = 1


class AccessLogUnavailable(RuntimeError):
    """The access log could not be written; the request must not return data."""


def value_hasher(key: bytes) -> Callable[[Any], str]:
    """Keyed hash of a changed value (before/after of a write): equal values give equal hashes,
    but a phone number cannot be recovered by hashing all phone numbers without the key."""

    def hash_value(value: Any) -> str:
        text = "" if value is None else str(value)
        return hmac.new(key, text.encode(), hashlib.sha256).hexdigest()[:32]

    return hash_value


def outcome_of(d: Disclosure) -> str:
    if d.kind is AccessKind.DENIED:
        return "denied"
    return "partly_redacted" if d.redacted else "permitted"


@dataclass
class RequestAccessLog:
    request_id: str
    actor: Actor
    purpose: str = "case_management"
    operation: str | None = None
    operation_hash: str | None = None
    client_address: str | None = None
    user_agent: str | None = None
    trace_id: str | None = None
    hash_alg: str = "sha256"
    hash_value: Callable[[Any], str] | None = None
    signer: Ed25519PrivateKey | None = None
    """When set, a checkpoint is signed each time the chain crosses ``checkpoint_every``."""
    checkpoint_every: int = 10_000
    pending: list[Disclosure] = field(default_factory=list)

    def record(self, disclosure: Disclosure) -> None:
        self.pending.append(disclosure)

    def discard_writes_since(self, mark: int) -> None:
        """A rolled-back mutation wrote nothing: drop its write events, keep reads and denials."""
        self.pending[mark:] = [d for d in self.pending[mark:] if d.kind is not AccessKind.WRITE]

    def _changes(self, d: Disclosure) -> dict[str, list[str]] | None:
        if not d.changes or self.hash_value is None:
            return None
        return {k: [self.hash_value(b), self.hash_value(a)] for k, (b, a) in d.changes.items()}

    def rows(self) -> list[dict[str, Any]]:
        now = utcnow()
        a = self.actor
        return [
            {
                "occurred_at": now,
                "request_id": self.request_id,
                "trace_id": self.trace_id,
                "operation": self.operation,
                "operation_hash": self.operation_hash,
                "actor_staff_id": a.staff_id,
                "actor_username": a.username,
                "actor_unit_id": a.unit_id,
                "actor_roles": ",".join(a.roles),
                "token_id": a.token_id,
                "purpose": self.purpose,
                "kind": d.kind.value,
                "outcome": outcome_of(d),
                "entity": d.entity,
                "entity_id": d.entity_id,
                "person_id": d.person_id,
                "fields": list(d.fields),
                "redacted": list(d.redacted),
                "field_classes": list(d.field_classes),
                "relations": list(d.relations),
                "changes": self._changes(d),
                "break_glass": "emergency" in d.relations,
                "reason": d.reason,
                "client_address": self.client_address,
                "user_agent": self.user_agent,
            }
            for d in self.pending
        ]

    async def flush(self, session: AsyncSession) -> int:
        """Chain and insert pending events in the session's transaction; the caller commits."""
        if not self.pending:
            return 0
        rows = self.rows()
        try:
            head = await append(session, rows, algorithm=self.hash_alg)
            last = rows[-1]["seq"]
            crossed = last // self.checkpoint_every != (last - len(rows)) // self.checkpoint_every
            if self.signer is not None and crossed:
                await checkpoints.create(
                    session,
                    self.signer,
                    reason="periodic",
                    seq=last,
                    head_hash=head,
                    hash_alg=self.hash_alg,
                )
        except Exception as exc:
            raise AccessLogUnavailable("access log write failed") from exc
        self.pending.clear()
        return len(rows)


async def append(session: AsyncSession, rows: list[dict[str, Any]], *, algorithm: str) -> str:
    """Append ``rows`` to the chain under the head lock; returns the new head hash."""
    claimed = await session.execute(
        update(AuditChainHead)
        .where(AuditChainHead.id == HEAD_ID)
        .values(seq=AuditChainHead.seq + len(rows))
        .returning(AuditChainHead.seq, AuditChainHead.head_hash)
    )
    head = claimed.first()
    if head is None:  # first write ever: create the head, then claim it
        await session.execute(
            insert(AuditChainHead).values(id=HEAD_ID, seq=0, head_hash=GENESIS, hash_alg=algorithm)
        )
        return await append(session, rows, algorithm=algorithm)
    last_seq = head.seq - len(rows)
    new_head = link(rows, first_seq=last_seq + 1, prev_hash=head.head_hash, algorithm=algorithm)
    await session.execute(insert(AccessEvent), rows)
    await session.execute(
        update(AuditChainHead).where(AuditChainHead.id == HEAD_ID).values(head_hash=new_head)
    )
    return new_head


async def chain_head(session: AsyncSession) -> tuple[int, str]:
    row = (
        await session.execute(
            select(AuditChainHead.seq, AuditChainHead.head_hash).where(AuditChainHead.id == HEAD_ID)
        )
    ).first()
    return (0, GENESIS) if row is None else (row.seq, row.head_hash)
