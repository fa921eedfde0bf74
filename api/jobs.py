"""Scheduled work: escalating alerts nobody acknowledged in time.

An open alert past its deadline moves to the nearest unit up the tree where someone may act on it
(units nobody staffs, or whose staff may not acknowledge, are skipped) and past the top to the
district duty officer (``domain.routing.next_owner``, ``authz.acting``). It gets a fresh deadline
for its tier, and the escalation is written to the access log.
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
from authz.acting import acting_units, duty_unit
from authz.policy import Policy
from domain.alerts import ACK_DEADLINES, Alert, AlertStatus
from domain.base import utcnow
from domain.cases import RiskLevel, SourceChannel
from domain.disclosure import AccessKind, Actor, Disclosure
from domain.notifications import enqueue_escalated
from domain.routing import next_owner
from domain.session import rows_matched, system_session
from domain.staff import Role, Staff, StaffRole
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
    policy: Policy | None = None,
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
                    Alert.channel,
                    Alert.case_id,
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
        staff = await on_duty(s)
        acting, duty = acting_units(policy or _policy(), staff), duty_unit(staff)
        audit = RequestAccessLog(
            request_id=f"job-escalate-{now:%Y%m%dT%H%M%S}",
            actor=Actor(None, "scheduler", None, ("system",)),
            purpose="case_management",
            hash_alg=hash_alg,
            trace_id=current_trace_id.get(),
        )
        moved: list[int] = []
        for alert_id, target, deadline, risk, person_id, channel, case_id in overdue:
            to = next_owner(target, parents, acting, duty)
            if channel == SourceChannel.SCHOOL_SCREENING and case_id is None:
                # A screening signal stays with the school until someone opens a case: its
                # tier alone would tell anyone else that a child answered the self-harm item
                # (ADR 0009). Overdue, it is re-armed there, never moved.
                to = target
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
        # Delivery outside the browser: the units these alerts moved to are notified, in this
        # same transaction (domain.notifications, delivered by api.delivery).
        await enqueue_escalated(s, {alert_id: target for alert_id, target, *_ in overdue}, now)
        await audit.flush(s)
        await signal_routed(s, moved)
        await s.commit()
    return escalated


_POLICY: list[Policy] = []


def _policy() -> Policy:
    """The policy, loaded once per process (the scheduler ticks every few seconds)."""
    if not _POLICY:
        _POLICY.append(Policy())
    return _POLICY[0]


async def on_duty(s: AsyncSession) -> list[tuple[int, Role]]:
    """(unit, role) of every active account: who could act on an alert where."""
    stmt = select(Staff.unit_id, StaffRole.role).join(StaffRole, StaffRole.staff_id == Staff.id)
    return [(unit_id, Role(role)) for unit_id, role in await s.execute(stmt.where(Staff.active))]


async def units_without_anyone_to_act(
    engine: AsyncEngine, policy: Policy | None = None
) -> list[str]:
    """Units that can receive an alert but whose escalation path reaches nobody able to act
    (no acting ancestor and no duty officer): an operator must staff them or add a duty
    officer. Checked at start-up (a warning) and by ``xinqiao jobs check-paths``."""
    async with system_session(engine, reason="scheduler: escalation paths") as s:
        units = (await s.execute(select(Unit.id, Unit.parent_id, Unit.name))).all()
        staff = await on_duty(s)
    acting, duty = acting_units(policy or _policy(), staff), duty_unit(staff)
    parents = {u: p for u, p, _ in units}
    stranded = []
    for unit_id, _, name in units:
        if unit_id in acting:
            continue
        if next_owner(unit_id, parents, acting, duty) not in acting:
            stranded.append(name)
    return sorted(stranded)


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
