"""The delivery worker: sends the notifications outbox (``domain.notifications``) over the
configured channels (``api.channels``), retries with exponential backoff, dead-letters, and lets
an undelivered high-risk alert escalate.

One run (``deliver_due``; the server runs it every ``XINQIAO_NOTIFY_SECONDS``, cron may run
``xinqiao notify run-once``):

1. **Claim** a batch of due notifications on channels this process can deliver, in a short
   transaction: ``SELECT ... FOR UPDATE SKIP LOCKED`` on PostgreSQL, so two server processes
   never take the same row (SQLite has one writer anyway), then one conditional ``UPDATE`` that
   increments ``attempts`` and pushes ``next_attempt_at`` out by a lease. An attempt row is
   written then, with no outcome yet. Nothing is held open while a receiver is slow.
2. **Send** each, outside any transaction, to the unit's contacts on that channel.
3. **Record** the outcome on the attempt, and on the notification only if the claim is still
   ours (``attempts`` unchanged): sent; failed with the next try at ``backoff``; or dead, when
   the attempts ran out or the receiver refused for good. A worker that dies mid-send leaves an
   attempt without outcome; the lease lapses and another worker tries again. Delivery is
   therefore at least once: a receiver may see a message twice, never zero times silently.
4. **Escalate** high-risk alerts whose notification is dead, or still undelivered at its
   deadline, once per notification: the alert's acknowledgement deadline is brought forward to
   now (logged as a write on the alert) and the scheduler's own escalation (``api.jobs``) moves
   it one level up, with a fresh deadline, its access-log event, the live feed and new
   notifications for the unit above. An alert already acknowledged, or already moved on, is
   left alone.

The worker reads only the outbox, units and contacts, none of which holds personal data; it
opens a system session for step 4 alone, which touches alerts.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import and_, or_, select, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from api.channels import DeliveryFailed, Sender
from api.jobs import escalate_overdue
from api.settings import NotifySettings
from api.telemetry import current_trace_id
from audit.log import RequestAccessLog
from domain.alerts import Alert, AlertStatus
from domain.base import utcnow
from domain.cases import RiskLevel
from domain.disclosure import AccessKind, Actor, Disclosure
from domain.notifications import (
    DUE,
    AttemptOutcome,
    Channel,
    Notification,
    NotificationAttempt,
    NotificationStatus,
    RetryPolicy,
    UnitContact,
    render,
)
from domain.session import rows_matched, session_factory, system_session
from domain.units import Unit

log = logging.getLogger("xinqiao.delivery")

BATCH = 50
LEASE = timedelta(minutes=5)
"""How long a claimed notification is left to its worker before another may try it."""
PARALLEL = 8
"""Sends in flight at once per worker."""


@dataclass
class DeliveryReport:
    sent: int = 0
    failed: int = 0
    dead: int = 0
    escalated: int = 0
    """Alerts escalated by this run (because of undelivered high-risk notifications, and any
    others that were overdue: it is the scheduler's escalation)."""


@dataclass(frozen=True)
class Claim:
    notification_id: int
    alert_id: int
    channel: Channel
    number: int
    """This attempt's number (``attempts`` after the claim)."""
    attempt_id: int
    unit_name: str
    risk: RiskLevel
    deadline: datetime
    recipients: tuple[str, ...]


@dataclass
class Delivery:
    """What a run needs: where the outbox is, how to send, how to retry and escalate."""

    engine: AsyncEngine
    senders: Mapping[Channel, Sender]
    policy: RetryPolicy = field(default_factory=RetryPolicy)
    link_base: str = ""
    hash_alg: str = "sha256"
    deadlines: dict[RiskLevel, timedelta] | None = None
    batch: int = BATCH
    worker: str = field(default_factory=lambda: worker_name())

    @classmethod
    def from_settings(
        cls,
        engine: AsyncEngine,
        senders: Mapping[Channel, Sender],
        settings: NotifySettings,
        *,
        hash_alg: str,
        deadlines: dict[RiskLevel, timedelta] | None,
    ) -> Delivery:
        return cls(
            engine=engine,
            senders=senders,
            policy=RetryPolicy(
                max_attempts=settings.max_attempts,
                base=timedelta(seconds=settings.backoff_seconds),
            ),
            link_base=settings.link_base,
            hash_alg=hash_alg,
            deadlines=deadlines,
        )

    async def run(self, *, now: datetime | None = None) -> DeliveryReport:
        """Deliver everything due at ``now``, then escalate what could not be delivered."""
        now = now or utcnow()
        report = DeliveryReport()
        channels = sorted(self.senders)
        if channels:
            gate = asyncio.Semaphore(PARALLEL)
            while True:
                claims = await self.claim(channels, now)
                await asyncio.gather(*(self._deliver(c, now, report, gate) for c in claims))
                if len(claims) < self.batch:
                    break
        report.escalated = await self.escalate_undelivered(now)
        return report

    # -- 1. claim -----------------------------------------------------------------------------

    async def claim(self, channels: Sequence[Channel], now: datetime) -> list[Claim]:
        n = Notification
        lease_end = max(now, utcnow()) + LEASE
        async with session_factory(self.engine)() as s:
            await self._bury_interrupted(s, now)
            due = (
                select(n.id)
                .where(
                    n.status.in_(DUE),
                    n.next_attempt_at <= now,
                    n.channel.in_(channels),
                    n.attempts < self.policy.max_attempts,
                )
                .order_by(n.next_attempt_at, n.id)
                .limit(self.batch)
                .with_for_update(skip_locked=True)
            )
            ids = list((await s.execute(due)).scalars())
            if not ids:
                await s.commit()
                return []
            # The same conditions again: on SQLite, where FOR UPDATE does not exist, a row
            # another process claimed since our SELECT no longer matches.
            taken = await s.execute(
                update(n)
                .where(
                    n.id.in_(ids),
                    n.status.in_(DUE),
                    n.next_attempt_at <= now,
                    n.attempts < self.policy.max_attempts,
                )
                .values(attempts=n.attempts + 1, next_attempt_at=lease_end)
                .returning(
                    n.id, n.alert_id, n.unit_id, n.channel, n.risk_level, n.deadline, n.attempts
                )
                .execution_options(synchronize_session=False)
            )
            rows = taken.all()
            units = {r.unit_id for r in rows}
            found = await s.execute(select(Unit.id, Unit.name).where(Unit.id.in_(units)))
            names: dict[int, str] = {unit_id: name for unit_id, name in found}
            contacts = await self._contacts(s, units)
            attempts = [
                NotificationAttempt(
                    notification_id=r.id, number=r.attempts, worker=self.worker, started_at=now
                )
                for r in rows
            ]
            s.add_all(attempts)
            await s.flush()
            await s.commit()
        return [
            Claim(
                notification_id=r.id,
                alert_id=r.alert_id,
                channel=Channel(r.channel),
                number=r.attempts,
                attempt_id=a.id,
                unit_name=names.get(r.unit_id, ""),
                risk=RiskLevel(r.risk_level),
                deadline=r.deadline,
                recipients=tuple(contacts.get((r.unit_id, Channel(r.channel)), ())),
            )
            for r, a in zip(rows, attempts, strict=True)
        ]

    async def _bury_interrupted(self, s: AsyncSession, now: datetime) -> None:
        """A notification whose last allowed attempt was interrupted (its worker died) is
        dead: it will not be claimed again."""
        n = Notification
        await s.execute(
            update(n)
            .where(
                n.status.in_(DUE),
                n.next_attempt_at <= now,
                n.attempts >= self.policy.max_attempts,
            )
            .values(status=NotificationStatus.DEAD, last_error_code="interrupted")
            .execution_options(synchronize_session=False)
        )

    @staticmethod
    async def _contacts(s: AsyncSession, units: set[int]) -> dict[tuple[int, Channel], list[str]]:
        c = UnitContact
        found = await s.execute(
            select(c.unit_id, c.channel, c.address).where(c.unit_id.in_(units)).order_by(c.id)
        )
        out: dict[tuple[int, Channel], list[str]] = {}
        for unit_id, channel, address in found:
            out.setdefault((unit_id, Channel(channel)), []).append(address)
        return out

    # -- 2. send and 3. record ------------------------------------------------------------------

    async def _deliver(
        self, claim: Claim, now: datetime, report: DeliveryReport, gate: asyncio.Semaphore
    ) -> None:
        message = render(
            notification_id=claim.notification_id,
            alert_id=claim.alert_id,
            tier=claim.risk,
            unit_name=claim.unit_name,
            deadline=claim.deadline,
            link_base=self.link_base,
        )
        started = time.monotonic()
        receipt: str | None = None
        failure: DeliveryFailed | None = None
        async with gate:
            try:
                if not claim.recipients:
                    raise DeliveryFailed("no_recipient", permanent=True)
                receipt = await self.senders[claim.channel].send(claim.recipients, message)
            except DeliveryFailed as failed:
                failure = failed
            except Exception as exc:  # a bug in a channel must not stop the others
                log.error("notification channel %s raised %s", claim.channel, type(exc).__name__)
                failure = DeliveryFailed("internal_error")
        finished = now + timedelta(seconds=time.monotonic() - started)
        await self._record(claim, now, finished, receipt, failure, report)

    async def _record(
        self,
        claim: Claim,
        now: datetime,
        finished: datetime,
        receipt: str | None,
        failure: DeliveryFailed | None,
        report: DeliveryReport,
    ) -> None:
        n, a = Notification, NotificationAttempt
        values: dict[str, object]
        if failure is None:
            outcome = AttemptOutcome.SENT
            values = {"status": NotificationStatus.SENT, "sent_at": finished}
        else:
            outcome = AttemptOutcome.FAILED
            dead = failure.permanent or claim.number >= self.policy.max_attempts
            values = {
                "status": NotificationStatus.DEAD if dead else NotificationStatus.FAILED,
                "last_error_code": failure.code,
                "next_attempt_at": now + self.policy.delay(claim.number),
            }
            log.warning(
                "notification %d attempt %d on %s failed: %s%s",
                claim.notification_id,
                claim.number,
                claim.channel.value,
                failure.code,
                " (dead)" if dead else "",
            )
        async with session_factory(self.engine)() as s:
            await s.execute(
                update(a)
                .where(a.id == claim.attempt_id)
                .values(
                    finished_at=finished,
                    outcome=outcome,
                    error_code=None if failure is None else failure.code,
                    receipt=receipt,
                )
                .execution_options(synchronize_session=False)
            )
            done = await s.execute(
                update(n)
                .where(n.id == claim.notification_id, n.attempts == claim.number)
                .values(**values)
                .execution_options(synchronize_session=False)
            )
            await s.commit()
        if not rows_matched(done):
            log.warning("notification %d was claimed again meanwhile", claim.notification_id)
        elif values["status"] is NotificationStatus.SENT:
            report.sent += 1
        elif values["status"] is NotificationStatus.DEAD:
            report.dead += 1
        else:
            report.failed += 1

    # -- 4. escalate ----------------------------------------------------------------------------

    async def escalate_undelivered(self, now: datetime) -> int:
        """Bring the deadline of high-risk alerts nobody could be told about forward to now, and
        run the scheduler's escalation. Returns how many alerts that escalated."""
        n = Notification
        undelivered = or_(
            n.status == NotificationStatus.DEAD,
            and_(n.status.in_(DUE), n.deadline <= now),
        )
        async with system_session(
            self.engine, reason="notifications: undelivered high-risk alerts escalate"
        ) as s:
            stuck = (
                await s.execute(
                    select(n.id, n.alert_id, n.unit_id)
                    .where(n.risk_level == RiskLevel.HIGH, n.escalated_at.is_(None), undelivered)
                    .order_by(n.id)
                    .limit(BATCH)
                )
            ).all()
            if not stuck:
                return 0
            audit = RequestAccessLog(
                request_id=f"job-notify-{now:%Y%m%dT%H%M%S}",
                actor=Actor(None, "notifier", None, ("system",)),
                purpose="case_management",
                hash_alg=self.hash_alg,
                trace_id=current_trace_id.get(),
            )
            marked = 0
            for notification_id, alert_id, unit_id in stuck:
                mark = await s.execute(
                    update(n)
                    .where(n.id == notification_id, n.escalated_at.is_(None))
                    .values(escalated_at=now)
                    .execution_options(synchronize_session=False)
                )
                if not rows_matched(mark):
                    continue  # another worker got there first
                marked += 1
                pulled = (
                    await s.execute(
                        update(Alert)
                        .where(
                            Alert.id == alert_id,
                            Alert.target_unit_id == unit_id,
                            Alert.acknowledged_at.is_(None),
                            Alert.status.in_([AlertStatus.OPEN, AlertStatus.ESCALATED]),
                            Alert.ack_deadline > now,
                        )
                        .values(ack_deadline=now)
                        .returning(Alert.person_id)
                        .execution_options(synchronize_session=False)
                    )
                ).one_or_none()
                if pulled is not None:
                    audit.record(
                        Disclosure(
                            AccessKind.WRITE,
                            "alert",
                            alert_id,
                            fields=("ack_deadline",),
                            reason="notification_undelivered",
                            person_id=pulled.person_id,
                        )
                    )
            await audit.flush(s)
            await s.commit()
        if not marked:
            return 0
        log.info("%d undelivered high-risk notifications: their alerts escalate", marked)
        # Strictly after the deadline set above: the escalation takes deadlines before its now.
        return await escalate_overdue(
            self.engine,
            now=max(utcnow(), now + timedelta(microseconds=1)),
            hash_alg=self.hash_alg,
            deadlines=self.deadlines,
        )


def worker_name() -> str:
    return f"{socket.gethostname()[:60]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


async def run_forever(
    delivery: Delivery, every_seconds: float, stop: asyncio.Event | None = None
) -> None:
    """The in-server delivery loop; failures are logged and retried on the next tick. Setting
    ``stop`` ends it between ticks (as the escalation scheduler does)."""
    stop = stop or asyncio.Event()
    while not stop.is_set():
        token = current_trace_id.set(uuid.uuid4().hex)
        try:
            report = await delivery.run()
            if report.sent or report.failed or report.dead or report.escalated:
                log.info(
                    "notifications: %d sent, %d to retry, %d dead, %d alerts escalated",
                    report.sent,
                    report.failed,
                    report.dead,
                    report.escalated,
                )
        except Exception:
            log.exception("notification delivery failed; will retry")
        finally:
            current_trace_id.reset(token)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(every_seconds):
                await stop.wait()
