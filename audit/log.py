"""The per-request access log: buffer every disclosure, write them all in one batch.

The API flushes the batch before any data leaves the server; if the write fails the response is
replaced by an error (fail closed). One multi-row INSERT per request, never one per field.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncSession

from audit.models import AccessEvent
from domain.base import utcnow
from domain.disclosure import AccessKind, Actor, Disclosure


class AccessLogUnavailable(RuntimeError):
    """The access log could not be written; the request must not return data."""


@dataclass
class RequestAccessLog:
    request_id: str
    actor: Actor
    purpose: str = "case_management"
    operation: str | None = None
    client_address: str | None = None
    pending: list[Disclosure] = field(default_factory=list)

    def record(self, disclosure: Disclosure) -> None:
        self.pending.append(disclosure)

    def discard_writes_since(self, mark: int) -> None:
        """A rolled-back mutation wrote nothing: drop its write events, keep reads and denials."""
        self.pending[mark:] = [d for d in self.pending[mark:] if d.kind is not AccessKind.WRITE]

    async def flush(self, session: AsyncSession) -> int:
        """Insert pending events in the session's transaction; the caller commits. Returns count."""
        if not self.pending:
            return 0
        now = utcnow()
        a = self.actor
        rows = [
            {
                "occurred_at": now,
                "request_id": self.request_id,
                "operation": self.operation,
                "actor_staff_id": a.staff_id,
                "actor_username": a.username,
                "actor_unit_id": a.unit_id,
                "actor_roles": ",".join(a.roles),
                "token_id": a.token_id,
                "purpose": self.purpose,
                "kind": d.kind.value,
                "entity": d.entity,
                "entity_id": d.entity_id,
                "fields": list(d.fields),
                "redacted": list(d.redacted),
                "field_classes": list(d.field_classes),
                "relations": list(d.relations),
                "reason": d.reason,
                "client_address": self.client_address,
            }
            for d in self.pending
        ]
        try:
            await session.execute(insert(AccessEvent), rows)
        except Exception as exc:
            raise AccessLogUnavailable("access log write failed") from exc
        count = len(rows)
        self.pending.clear()
        return count
