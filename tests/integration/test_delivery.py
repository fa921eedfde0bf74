"""The delivery worker against real receivers on 127.0.0.1 (an aiosmtpd SMTP server and an HTTP
server standing in for the SMS gateway and a group robot), on both backends: each channel
delivers; failures are retried with exponential backoff; attempts that run out, or a refusal for
good, dead-letter; an undelivered high-risk alert escalates through the scheduler's path; two
workers deliver each notification once; a worker that dies mid-send is covered by the lease.

Each test builds its own unit tree in a database of this module (one per backend) and starts
with an empty outbox; the clock is injected, a day ahead, so backoff times are exact."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from api.channels import Sender, SmsGatewaySender, SmtpSender, WebhookSender
from api.delivery import LEASE, Delivery
from api.settings import SmtpSecurity
from domain import models as m
from domain.alerts import AlertStatus
from domain.base import utcnow
from domain.cases import RiskLevel, SourceChannel
from domain.notifications import (
    Channel,
    NotificationStatus,
    RetryPolicy,
    alert_global_id,
    contact_channels,
    notifications_for,
)
from domain.session import create_engine, system_session
from domain.units import UnitKind
from migrations import runner
from tests.conftest import BACKENDS, _drop_postgres, _fresh_postgres, postgres_url
from tests.receivers import HttpReceiver, SmtpReceiver

TOKEN = "test-gateway-token"
_trees = itertools.count(1)


@dataclass
class Outbox:
    engine: AsyncEngine
    units: dict[str, int]
    t0: datetime

    async def contact(self, unit: str, channel: Channel, address: str) -> None:
        async with system_session(self.engine, reason="test: contacts") as s:
            s.add(m.UnitContact(unit_id=self.units[unit], channel=channel, address=address))
            await s.commit()

    async def alert(self, risk: RiskLevel, unit: str = "grid") -> int:
        """An alert raised at t0 with its tier's default deadline, and its notifications (as
        the request that raises it writes them)."""
        deadline = {RiskLevel.HIGH: 30, RiskLevel.MEDIUM: 24 * 60, RiskLevel.LOW: 72 * 60}[risk]
        async with system_session(self.engine, reason="test: an alert") as s:
            alert = m.Alert(
                channel=SourceChannel.HOTLINE_96525,
                risk_level=risk,
                status=AlertStatus.OPEN,
                area_unit_id=self.units[unit],
                target_unit_id=self.units[unit],
                raised_at=self.t0,
                routed_at=self.t0,
                ack_deadline=self.t0 + timedelta(minutes=deadline),
            )
            s.add(alert)
            await s.flush()
            channels = await contact_channels(s, [alert.target_unit_id])
            s.add_all(notifications_for([alert], channels, self.t0))
            await s.commit()
            return alert.id

    async def notifications(self, alert_id: int) -> list[m.Notification]:
        async with system_session(self.engine, reason="test: read the outbox") as s:
            n = m.Notification
            found = await s.execute(select(n).where(n.alert_id == alert_id).order_by(n.id))
            return list(found.scalars())

    async def attempts(self, notification_id: int) -> list[m.NotificationAttempt]:
        async with system_session(self.engine, reason="test: read attempts") as s:
            a = m.NotificationAttempt
            found = await s.execute(
                select(a).where(a.notification_id == notification_id).order_by(a.number, a.id)
            )
            return list(found.scalars())

    async def alert_row(self, alert_id: int) -> m.Alert:
        async with system_session(self.engine, reason="test: read the alert") as s:
            return (await s.execute(select(m.Alert).where(m.Alert.id == alert_id))).scalar_one()


@pytest.fixture(scope="module", params=BACKENDS)
async def database(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[tuple[str, AsyncEngine]]:
    pg_name = None
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('delivery') / 'outbox.db'}"
    else:
        admin = postgres_url()
        assert admin is not None
        url, pg_name = await _fresh_postgres(admin)
    engine = create_engine(url)
    await runner.upgrade(engine)
    yield url, engine
    await engine.dispose()
    if pg_name:
        admin = postgres_url()
        assert admin is not None
        await _drop_postgres(admin, pg_name)


@pytest.fixture
async def outbox(database: tuple[str, AsyncEngine]) -> AsyncIterator[Outbox]:
    """An empty outbox, no contacts, every earlier alert closed, and a unit tree of its own."""
    _, engine = database
    n = next(_trees)
    async with system_session(engine, reason="test: a clean outbox") as s:
        await s.execute(delete(m.NotificationAttempt))
        await s.execute(delete(m.Notification))
        await s.execute(delete(m.UnitContact))
        await s.execute(update(m.Alert).values(status=AlertStatus.CLOSED))
        units: dict[str, int] = {}
        parent: m.Unit | None = None
        for key, kind in (
            ("district", UnitKind.DISTRICT),
            ("street", UnitKind.STREET),
            ("community", UnitKind.COMMUNITY),
            ("grid", UnitKind.GRID),
        ):
            unit = m.Unit(name=f"测试{n}{key}", kind=kind, parent_id=parent.id if parent else None)
            s.add(unit)
            await s.flush()
            unit.place_under(parent)
            units[key] = unit.id
            parent = unit
        await s.commit()
    yield Outbox(engine, units, utcnow().replace(microsecond=0) + timedelta(days=1))


def _delivery(outbox: Outbox, senders: dict[Channel, Sender], **kw: Any) -> Delivery:
    return Delivery(engine=outbox.engine, senders=senders, **kw)


def _smtp(receiver: SmtpReceiver) -> SmtpSender:
    return SmtpSender(host="127.0.0.1", port=receiver.port, security=SmtpSecurity.NONE, timeout=5)


async def test_each_channel_delivers_the_alert_s_tier_unit_deadline_and_link(
    outbox: Outbox,
) -> None:
    await outbox.contact("grid", Channel.EMAIL, "duty@grid.example")
    await outbox.contact("grid", Channel.EMAIL, "leader@grid.example")
    await outbox.contact("grid", Channel.SMS, "13800000000")
    with SmtpReceiver() as smtp, HttpReceiver() as gateway, HttpReceiver() as robot:
        await outbox.contact("grid", Channel.WEBHOOK, robot.url("/cgi-bin/webhook/send?key=k1"))
        alert_id = await outbox.alert(RiskLevel.HIGH)
        senders = {
            Channel.EMAIL: _smtp(smtp),
            Channel.SMS: SmsGatewaySender(url=gateway.url("/sms"), token=TOKEN),
            Channel.WEBHOOK: WebhookSender(allowed_hosts=(robot.host,)),
        }
        report = await _delivery(outbox, senders, link_base="https://xq.example/alerts/").run(
            now=outbox.t0
        )
    assert report.sent == 3 and report.failed == report.dead == report.escalated == 0
    gid = alert_global_id(alert_id)
    deadline = (outbox.t0 + timedelta(minutes=30) + timedelta(hours=8)).strftime("%Y-%m-%d %H:%M")

    (mail,) = smtp.mails
    assert sorted(mail.recipients) == ["duty@grid.example", "leader@grid.example"]
    assert "高风险" in mail.message["Subject"] and "测试" in mail.message["Subject"]
    for text in (
        mail.text,
        gateway.requests[0].body["text"],
        robot.requests[0].body["text"]["content"],
    ):
        assert "高风险预警" in text and deadline in text
        assert f"https://xq.example/alerts/{gid}" in text
    (sms,) = gateway.requests
    assert sms.headers["Authorization"] == f"Bearer {TOKEN}"
    assert sms.body["to"] == ["13800000000"]
    assert sms.body["reference"].startswith("xinqiao-n")
    (hook,) = robot.requests
    assert hook.path == "/cgi-bin/webhook/send?key=k1" and hook.body["msgtype"] == "text"

    rows = await outbox.notifications(alert_id)
    assert [(r.channel, r.status, r.attempts) for r in rows] == [
        (Channel.EMAIL, NotificationStatus.SENT, 1),
        (Channel.SMS, NotificationStatus.SENT, 1),
        (Channel.WEBHOOK, NotificationStatus.SENT, 1),
    ]
    receipts = {r.channel: (await outbox.attempts(r.id))[0] for r in rows}
    assert all(a.outcome == "sent" and a.error_code is None for a in receipts.values())
    assert receipts[Channel.SMS].receipt == "gw-1", "the gateway's message id is kept"
    assert receipts[Channel.EMAIL].receipt and "xinqiao-n" in receipts[Channel.EMAIL].receipt
    # Delivered once: a second run finds nothing due.
    again = await _delivery(outbox, senders).run(now=outbox.t0 + timedelta(hours=2))
    assert again.sent == 0 and len(gateway.requests) == 1


async def test_a_receiver_failing_twice_then_succeeding_is_retried_with_backoff(
    outbox: Outbox,
) -> None:
    await outbox.contact("grid", Channel.SMS, "13800000001")
    await outbox.contact("grid", Channel.EMAIL, "duty@grid.example")
    policy = RetryPolicy(max_attempts=5, base=timedelta(seconds=30))
    t0 = outbox.t0
    with HttpReceiver(script=[503, 503]) as gateway, SmtpReceiver() as smtp:
        smtp.fail = 2
        senders = {
            Channel.SMS: SmsGatewaySender(url=gateway.url("/sms"), token=TOKEN),
            Channel.EMAIL: _smtp(smtp),
        }
        alert_id = await outbox.alert(RiskLevel.MEDIUM)
        worker = _delivery(outbox, senders, policy=policy)
        first = await worker.run(now=t0)
        assert first.failed == 2
        rows = await outbox.notifications(alert_id)
        assert {r.next_attempt_at for r in rows} == {t0 + timedelta(seconds=30)}
        assert {r.last_error_code for r in rows} == {"http_503", "smtp_451"}
        assert (await worker.run(now=t0 + timedelta(seconds=29))).failed == 0, "not due yet"
        second = await worker.run(now=t0 + timedelta(seconds=30))
        assert second.failed == 2
        rows = await outbox.notifications(alert_id)
        assert {r.next_attempt_at for r in rows} == {t0 + timedelta(seconds=90)}, "doubled"
        third = await worker.run(now=t0 + timedelta(seconds=90))
        assert third.sent == 2
    assert gateway.answered == [503, 503, 200] and smtp.refused == 2 and len(smtp.mails) == 1
    for row in await outbox.notifications(alert_id):
        assert row.status == NotificationStatus.SENT and row.attempts == 3
        attempts = await outbox.attempts(row.id)
        assert [(a.number, a.outcome) for a in attempts] == [
            (1, "failed"),
            (2, "failed"),
            (3, "sent"),
        ]
        assert attempts[0].error_code in ("http_503", "smtp_451")
        assert all(a.finished_at is not None for a in attempts)


async def test_attempts_run_out_dead_letter_and_a_high_risk_alert_escalates(
    outbox: Outbox,
) -> None:
    """Dead after N attempts: the alert moves to the community with a fresh deadline (the
    scheduler's escalation, access-logged), and the community is notified in turn."""
    policy = RetryPolicy(max_attempts=3, base=timedelta(seconds=10))
    with HttpReceiver(always=500) as robot, HttpReceiver() as gateway:
        await outbox.contact("grid", Channel.WEBHOOK, robot.url("/hook"))
        await outbox.contact("community", Channel.SMS, "13800000002")
        alert_id = await outbox.alert(RiskLevel.HIGH)
        senders = {
            Channel.WEBHOOK: WebhookSender(allowed_hosts=(robot.host,)),
            Channel.SMS: SmsGatewaySender(url=gateway.url("/sms"), token=TOKEN),
        }
        worker = _delivery(outbox, senders, policy=policy)
        t = outbox.t0
        reports = []
        for offset in (0, 10, 30):  # 10 s, then 20 s
            reports.append(await worker.run(now=t + timedelta(seconds=offset)))
        assert [r.failed for r in reports] == [1, 1, 0] and reports[-1].dead == 1
        dead = (await outbox.notifications(alert_id))[0]
        assert dead.status == NotificationStatus.DEAD and dead.attempts == 3
        assert dead.last_error_code == "http_500" and dead.escalated_at is not None
        assert reports[-1].escalated == 1
        alert = await outbox.alert_row(alert_id)
        assert alert.status == AlertStatus.ESCALATED
        assert alert.target_unit_id == outbox.units["community"], "one level up"
        assert alert.ack_deadline > t + timedelta(seconds=30), "with a fresh deadline"
        # The community is told, by the next run.
        notified = await outbox.notifications(alert_id)
        assert [(r.unit_id, r.channel) for r in notified] == [
            (outbox.units["grid"], Channel.WEBHOOK),
            (outbox.units["community"], Channel.SMS),
        ]
        after = await worker.run(now=t + timedelta(seconds=31))
        assert after.sent == 1 and len(gateway.requests) == 1
        # Escalated once, however many runs follow.
        assert (await worker.run(now=t + timedelta(seconds=40))).escalated == 0
        assert (await outbox.alert_row(alert_id)).target_unit_id == outbox.units["community"]
    async with system_session(outbox.engine, reason="test: access log") as s:
        e = m.AccessEvent
        events = await s.execute(
            select(e.reason, e.actor_username)
            .where(e.entity == "alert", e.entity_id == alert_id)
            .order_by(e.seq)
        )
        assert list(events) == [("notification_undelivered", "notifier"), ("escalate", "scheduler")]


async def test_a_refusal_for_good_is_dead_at_once_and_a_medium_alert_does_not_escalate(
    outbox: Outbox,
) -> None:
    with HttpReceiver(always=401) as gateway, HttpReceiver() as elsewhere:
        await outbox.contact("grid", Channel.SMS, "13800000003")
        # A webhook contact outside the allowed hosts is never posted to.
        await outbox.contact("grid", Channel.WEBHOOK, elsewhere.url("/hook"))
        alert_id = await outbox.alert(RiskLevel.MEDIUM)
        senders = {
            Channel.SMS: SmsGatewaySender(url=gateway.url("/sms"), token="wrong"),
            Channel.WEBHOOK: WebhookSender(allowed_hosts=("qyapi.weixin.qq.com",)),
        }
        report = await _delivery(outbox, senders).run(now=outbox.t0)
    assert report.dead == 2 and report.escalated == 0
    rows = await outbox.notifications(alert_id)
    assert [(r.status, r.attempts, r.last_error_code) for r in rows] == [
        (NotificationStatus.DEAD, 1, "http_401"),
        (NotificationStatus.DEAD, 1, "webhook_host_not_allowed"),
    ]
    assert elsewhere.requests == []
    assert (await outbox.alert_row(alert_id)).status == AlertStatus.OPEN


async def test_a_high_risk_notification_still_undelivered_at_its_deadline_escalates(
    outbox: Outbox,
) -> None:
    """No worker can send SMS here: the notification stays pending, and at the deadline the
    alert escalates (once), as an unacknowledged one does."""
    await outbox.contact("grid", Channel.SMS, "13800000004")
    alert_id = await outbox.alert(RiskLevel.HIGH)
    worker = _delivery(outbox, {})
    before = await worker.run(now=outbox.t0 + timedelta(minutes=29))
    assert before.escalated == 0
    report = await worker.run(now=outbox.t0 + timedelta(minutes=31))
    assert report.escalated == 1
    alert = await outbox.alert_row(alert_id)
    assert (alert.status, alert.target_unit_id) == (
        AlertStatus.ESCALATED,
        outbox.units["community"],
    )
    (row,) = await outbox.notifications(alert_id)
    assert row.status == NotificationStatus.PENDING and row.escalated_at is not None


async def test_an_acknowledged_alert_is_not_escalated_for_an_undelivered_notification(
    outbox: Outbox,
) -> None:
    await outbox.contact("grid", Channel.SMS, "13800000005")
    alert_id = await outbox.alert(RiskLevel.HIGH)
    async with system_session(outbox.engine, reason="test: acknowledged in the browser") as s:
        await s.execute(
            update(m.Alert)
            .where(m.Alert.id == alert_id)
            .values(status=AlertStatus.ACKNOWLEDGED, acknowledged_at=outbox.t0)
        )
        await s.commit()
    with HttpReceiver(always=401) as gateway:
        senders = {Channel.SMS: SmsGatewaySender(url=gateway.url("/sms"), token=TOKEN)}
        report = await _delivery(outbox, senders).run(now=outbox.t0)
    assert report.dead == 1 and report.escalated == 0
    alert = await outbox.alert_row(alert_id)
    assert (alert.status, alert.target_unit_id) == (AlertStatus.ACKNOWLEDGED, outbox.units["grid"])


async def test_a_worker_that_dies_mid_send_is_covered_by_the_lease(outbox: Outbox) -> None:
    await outbox.contact("grid", Channel.SMS, "13800000006")
    alert_id = await outbox.alert(RiskLevel.LOW)
    with HttpReceiver() as gateway:
        senders = {Channel.SMS: SmsGatewaySender(url=gateway.url("/sms"), token=TOKEN)}
        crashed = _delivery(outbox, senders)
        (claim,) = await crashed.claim([Channel.SMS], outbox.t0)  # ...and never finishes
        other = _delivery(outbox, senders)
        assert (await other.run(now=outbox.t0 + LEASE - timedelta(seconds=1))).sent == 0
        assert (await other.run(now=outbox.t0 + LEASE)).sent == 1
    (row,) = await outbox.notifications(alert_id)
    attempts = await outbox.attempts(row.id)
    assert [(a.number, a.outcome, a.worker) for a in attempts] == [
        (1, None, crashed.worker),
        (2, "sent", other.worker),
    ]
    assert claim.number == 1 and row.attempts == 2


async def test_two_workers_deliver_each_notification_exactly_once(
    outbox: Outbox, database: tuple[str, AsyncEngine]
) -> None:
    """Two workers with engines of their own (as two server processes), claiming from the same
    outbox at the same time: on PostgreSQL FOR UPDATE SKIP LOCKED keeps them apart, on SQLite
    the single writer and the conditional claim."""
    url, _ = database
    await outbox.contact("grid", Channel.SMS, "13800000007")
    alerts = [await outbox.alert(RiskLevel.LOW) for _ in range(24)]
    engines = [create_engine(url), create_engine(url)]
    try:
        with HttpReceiver(delay=0.02) as gateway:
            senders = {Channel.SMS: SmsGatewaySender(url=gateway.url("/sms"), token=TOKEN)}
            workers = [Delivery(engine=e, senders=senders, batch=4) for e in engines]
            reports = await asyncio.gather(*(w.run(now=outbox.t0) for w in workers))
    finally:
        for engine in engines:
            await engine.dispose()
    references = [r.body["reference"] for r in gateway.requests]
    assert len(references) == len(set(references)) == 24, "each delivered once"
    assert sum(r.sent for r in reports) == 24
    tried_by = set()
    for alert_id in alerts:
        (row,) = await outbox.notifications(alert_id)
        assert row.status == NotificationStatus.SENT and row.attempts == 1
        (attempt,) = await outbox.attempts(row.id)
        tried_by.add(attempt.worker)
    assert tried_by <= {w.worker for w in workers}
    assert all(r.sent for r in reports), "both workers took part"
