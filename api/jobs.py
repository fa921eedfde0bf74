"""Scheduled work: escalating alerts nobody acknowledged in time.

An open alert past its deadline moves to the next unit up the tree (grid → community → street →
district), gets a fresh deadline for its tier, and the escalation is written to the access log.
Several processes run it (each server's scheduler, a cron ``xinqiao jobs run-once``). On
PostgreSQL a tick first takes a transaction-scoped advisory lock (``ESCALATION_LOCK``) and skips
the tick when another process holds it: one process escalates at a time, so ticks never race for
the same rows, queue on each other's row locks, or interleave their access-log writes. Each
escalation is also a conditional UPDATE on the deadline it saw, so even without the lock (SQLite,
where the database's write lock serialises writers) no alert is escalated twice. The escalating
transaction announces the alerts it moved (``api.alert_signal``), so every server's live feed
pushes the escalation at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy import select, text, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from api.alert_signal import signal_routed
from api.telemetry import current_trace_id
from audit.log import RequestAccessLog
from domain.alerts import ACK_DEADLINES, Alert, AlertStatus
from domain.base import utcnow
from domain.cases import RiskLevel
from domain.disclosure import AccessKind, Actor, Disclosure
from domain.session import rows_matched, system_session
from domain.units import Unit

log = logging.getLogger("xinqiao.jobs")
BATCH = 500
ESCALATION_LOCK = 0x78696E7169616F01
"""The advisory-lock key of escalation ticks (``xinqiao`` in ASCII, then 01): any process of
any version that escalates takes this one, and nothing else in the database uses it."""


async def _escalation_turn(session: AsyncSession) -> bool:
    """Whether this transaction may escalate: on PostgreSQL, it holds the escalation lock until
    it ends (another process holding it is escalating now: this tick does nothing)."""
    connection = await session.connection()
    if connection.dialect.name != "postgresql":
        return True
    got = await session.execute(
        text("SELECT pg_try_advisory_xact_lock(:key)"), {"key": ESCALATION_LOCK}
    )
    return bool(got.scalar_one())


async def escalate_overdue(
    engine: AsyncEngine,
    *,
    now: datetime | None = None,
    hash_alg: str = "sha256",
    deadlines: dict[RiskLevel, timedelta] | None = None,
) -> int:
    deadlines = deadlines or ACK_DEADLINES
    now = now or utcnow()
    escalated = 0
    async with system_session(engine, reason="scheduler: alert escalation") as s:
        if not await _escalation_turn(s):
            log.debug("another process is escalating; skipping this tick")
            return 0
        overdue = (
            await s.execute(
                select(
                    Alert.id,
                    Alert.target_unit_id,
                    Alert.ack_deadline,
                    Alert.risk_level,
                    Alert.person_id,
                )
                .where(
                    Alert.status.in_([AlertStatus.OPEN, AlertStatus.ESCALATED]),
                    Alert.acknowledged_at.is_(None),
                    Alert.ack_deadline < now,
                )
                .order_by(Alert.id)
                .limit(BATCH)
            )
        ).all()
        parents = dict((await s.execute(select(Unit.id, Unit.parent_id))).all())
        audit = RequestAccessLog(
            request_id=f"job-escalate-{now:%Y%m%dT%H%M%S}",
            actor=Actor(None, "scheduler", None, ("system",)),
            purpose="case_management",
            hash_alg=hash_alg,
            trace_id=current_trace_id.get(),
        )
        moved: list[int] = []
        for alert_id, target, deadline, risk, person_id in overdue:
            to = parents.get(target) or target
            done = await s.execute(
                update(Alert)
                .where(
                    Alert.id == alert_id,
                    Alert.ack_deadline == deadline,
                    Alert.acknowledged_at.is_(None),
                )
                .values(
                    target_unit_id=to,
                    status=AlertStatus.ESCALATED,
                    ack_deadline=now + deadlines[risk],
                    routed_at=now,
                )
            )
            if rows_matched(done):
                escalated += 1
                moved.append(alert_id)
                audit.record(
                    Disclosure(
                        AccessKind.WRITE,
                        "alert",
                        alert_id,
                        fields=("target_unit_id", "status", "ack_deadline"),
                        reason="escalate",
                        person_id=person_id,
                        changes={"target_unit_id": (target, to)},
                    )
                )
        await audit.flush(s)
        await signal_routed(s, moved)
        await s.commit()
    return escalated


async def run_forever(
    engine: AsyncEngine,
    every_seconds: float,
    hash_alg: str,
    deadlines: dict[RiskLevel, timedelta] | None = None,
    on_escalated: Callable[[int], None] | None = None,
    stop: asyncio.Event | None = None,
) -> None:
    """The in-server scheduler; failures are logged and retried on the next tick. Setting
    ``stop`` ends it between ticks (a cancel could land in the middle of a query)."""
    stop = stop or asyncio.Event()
    while not stop.is_set():
        # Each tick has a trace id of its own, as a request does: its access events and its
        # log lines share it.
        token = current_trace_id.set(uuid.uuid4().hex)
        try:
            count = await escalate_overdue(engine, hash_alg=hash_alg, deadlines=deadlines)
            if count:
                log.info("escalated %d overdue alerts", count)
                if on_escalated is not None:
                    on_escalated(count)
        except Exception:
            log.exception("alert escalation failed; will retry")
        finally:
            current_trace_id.reset(token)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(every_seconds):
                await stop.wait()
