"""Retention: purge events older than the retention period, keeping the log verifiable.

The retention period defaults to three years (PIPL art. 56) and may never be set below 180 days
(Cybersecurity Law, art. 23 as renumbered in 2026). A purge first signs a checkpoint at the cut,
so the first remaining event's ``prev_hash`` is vouched for by a signature, then deletes under a
permit row that the append-only trigger checks, inside one transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import delete, func, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from audit import checkpoints
from domain.access_log import AccessEvent, AuditPurgePermit

MINIMUM = timedelta(days=180)


class RetentionRefused(ValueError):
    pass


@dataclass(frozen=True)
class PurgeResult:
    deleted: int
    cut_seq: int | None


async def purge(
    session: AsyncSession,
    key: Ed25519PrivateKey,
    *,
    before: datetime,
    now: datetime,
    retention: timedelta,
) -> PurgeResult:
    if retention < MINIMUM:
        raise RetentionRefused("retention may not be shorter than 180 days")
    if before > now - retention:
        raise RetentionRefused(
            f"refusing to purge events younger than the retention period ({retention.days} days)"
        )
    last = (
        await session.execute(
            select(AccessEvent.seq, AccessEvent.hash, AccessEvent.hash_alg, AccessEvent.occurred_at)
            .where(AccessEvent.occurred_at < before)
            .order_by(AccessEvent.seq.desc())
            .limit(1)
        )
    ).first()
    if last is None:
        return PurgeResult(0, None)
    await checkpoints.create(
        session,
        key,
        reason="purge",
        seq=last.seq,
        head_hash=last.hash,
        hash_alg=last.hash_alg,
        cut_at=last.occurred_at.isoformat(),
    )
    await session.execute(insert(AuditPurgePermit).values(id=1, before_seq=last.seq + 1))
    count = (
        await session.execute(
            select(func.count()).select_from(AccessEvent).where(AccessEvent.seq <= last.seq)
        )
    ).scalar_one()
    await session.execute(delete(AccessEvent).where(AccessEvent.seq <= last.seq))
    await session.execute(delete(AuditPurgePermit))
    await session.commit()
    return PurgeResult(int(count), last.seq)
