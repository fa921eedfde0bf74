"""Scheduled work: escalating alerts nobody acknowledged in time.

An open alert past its deadline moves to the next unit up the tree (grid → community → street →
district), gets a fresh deadline for its tier, and the escalation is written to the access log.
Each escalation is a conditional UPDATE on the deadline it saw, so several processes (the
in-server scheduler, a cron ``xinqiao jobs run-once``) never escalate the same alert twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from api.telemetry import current_trace_id
from audit.log import RequestAccessLog
from domain.alerts import ACK_DEADLINES, Alert, AlertStatus
from domain.base import utcnow
from domain.cases import RiskLevel
from domain.disclosure import AccessKind, Actor, Disclosure
from domain.notifications import enqueue_escalated
from domain.session import rows_matched, system_session
from domain.units import Unit

log = logging.getLogger("xinqiao.jobs")
BATCH = 500


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
        # Delivery outside the browser: the units these alerts moved to are notified, in this
        # same transaction (domain.notifications, delivered by api.delivery).
        await enqueue_escalated(s, {alert_id: target for alert_id, target, *_ in overdue}, now)
        await audit.flush(s)
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
