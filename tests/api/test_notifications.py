"""Notifications outside the browser, through the public API (both backends): every way an alert
is created writes exactly its outbox rows in the same transaction, a mutation that fails leaves
none, the messages delivered carry no personal data, and the server delivers in the background.

Units get duty contacts only for the length of a test (the ``contacts`` fixture removes them and
the notifications the test caused), so the rest of the suite raises alerts with no outbox rows.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import delete, func, select, update
from starlette.testclient import TestClient

from api.app import create_app
from api.channels import SmsGatewaySender, SmtpSender, WebhookSender
from api.delivery import Delivery
from api.jobs import escalate_overdue
from api.services import alerts as alert_service
from api.settings import NotifySettings, SmtpSecurity
from domain import models as m
from domain.base import utcnow
from domain.errors import DomainError, ErrorCode
from domain.notifications import Channel
from domain.session import system_session
from domain.values import id_check_char
from tests import observability
from tests.api.test_screening import CAMPAIGN, IMPORT, SELF_HARM, _student, phq9_csv
from tests.conftest import Api
from tests.receivers import HttpReceiver, SmtpReceiver

# These tests commit (the outbox, contacts, a second app's background worker): each runs on a
# private copy of the district (tests/conftest.py).
pytestmark = pytest.mark.own_database

RAISE = """mutation($in: RaiseAlertInput!) { raiseAlert(input: $in) {
  alert { id ackDeadline } errors { code } } }"""


def gid(type_name: str, number: int) -> str:
    return base64.b64encode(f"{type_name}:{number}".encode()).decode()


def number_of(global_id: str) -> int:
    return int(base64.b64decode(global_id).decode().split(":")[1])


@dataclass
class Contacts:
    api: Api
    ids: list[int] = field(default_factory=list)

    async def add(self, unit_id: int, channel: Channel, address: str) -> None:
        async with system_session(self.api.engine, reason="test: a unit's duty contact") as s:
            row = m.UnitContact(unit_id=unit_id, channel=channel, address=address)
            s.add(row)
            await s.commit()
            self.ids.append(row.id)

    async def everywhere(self) -> None:
        """A duty mailbox on every unit of the district."""
        async with system_session(self.api.engine, reason="test: contacts everywhere") as s:
            units = list((await s.execute(select(m.Unit.id))).scalars())
        for unit_id in units:
            await self.add(unit_id, Channel.EMAIL, f"duty{unit_id}@units.example")

    async def outbox(self, alert_id: int) -> list[tuple[int, Channel, str, str]]:
        """(unit, channel, tier, status) of an alert's notifications."""
        async with system_session(self.api.engine, reason="test: read the outbox") as s:
            n = m.Notification
            rows = await s.execute(
                select(n.unit_id, n.channel, n.risk_level, n.status)
                .where(n.alert_id == alert_id)
                .order_by(n.unit_id, n.channel)
            )
            return [(u, Channel(c), str(r), str(st)) for u, c, r, st in rows]


@pytest.fixture
async def contacts(api: Api) -> AsyncIterator[Contacts]:
    async with system_session(api.engine, reason="test: outbox watermark") as s:
        first = (await s.execute(select(func.coalesce(func.max(m.Notification.id), 0)))).scalar()
    made = Contacts(api)
    yield made
    async with system_session(api.engine, reason="test: remove what the test added") as s:
        n, a = m.Notification, m.NotificationAttempt
        mine = select(n.id).where(n.id > first).scalar_subquery()
        await s.execute(delete(a).where(a.notification_id.in_(mine)))
        await s.execute(delete(n).where(n.id > first))
        await s.execute(delete(m.UnitContact).where(m.UnitContact.id.in_(made.ids)))
        await s.commit()


async def _alert(api: Api, alert_id: int) -> m.Alert:
    async with system_session(api.engine, reason="test: read an alert") as s:
        return (await s.execute(select(m.Alert).where(m.Alert.id == alert_id))).scalar_one()


async def _went_to(api: Api, alert_id: int) -> list[int]:
    """Every unit an alert was addressed to: its owner and the rest of its team (ADR 0009)."""
    async with system_session(api.engine, reason="test: an alert's units") as s:
        t = m.AlertTarget
        targets = set((await s.execute(select(t.unit_id).where(t.alert_id == alert_id))).scalars())
        owner = (
            await s.execute(select(m.Alert.target_unit_id).where(m.Alert.id == alert_id))
        ).scalar_one()
    return sorted(targets | {owner})


async def _newest_alert(api: Api) -> int:
    async with system_session(api.engine, reason="test: the newest alert") as s:
        return int((await s.execute(select(func.max(m.Alert.id)))).scalar_one())


async def test_raising_an_alert_writes_exactly_its_outbox_rows_in_its_transaction(
    api: Api, contacts: Contacts
) -> None:
    grid = api.district.communities[3]["grid"]
    await contacts.add(grid, Channel.EMAIL, "duty@grid.example")
    await contacts.add(grid, Channel.EMAIL, "leader@grid.example")  # one message, two readers
    await contacts.add(grid, Channel.SMS, "13800000010")
    raised = await api.data(
        "hotline",
        RAISE,
        {"in": {"channel": "HOTLINE_96525", "riskLevel": "HIGH", "areaUnit": gid("Unit", grid)}},
    )
    alert_id = number_of(raised["raiseAlert"]["alert"]["id"])
    assert await contacts.outbox(alert_id) == [
        (grid, Channel.EMAIL, "high", "pending"),
        (grid, Channel.SMS, "high", "pending"),
    ]
    alert = await _alert(api, alert_id)
    async with system_session(api.engine, reason="test: the outbox rows") as s:
        n = m.Notification
        rows = list((await s.execute(select(n).where(n.alert_id == alert_id))).scalars())
        e = m.AccessEvent
        logged = (
            await s.execute(
                select(e.fields, e.actor_username, e.person_id).where(
                    e.entity == "alert", e.entity_id == alert_id, e.reason == "notify"
                )
            )
        ).one()
    assert {r.deadline for r in rows} == {alert.ack_deadline}, "the alert's own deadline"
    assert all(r.next_attempt_at == alert.raised_at and r.attempts == 0 for r in rows)
    assert sorted(logged.fields) == ["notification:email", "notification:sms"]
    assert logged.actor_username == "hotline", "who caused the messages is in the access log"

    # A unit with no contacts: an alert, and nothing to send.
    quiet = api.district.communities[2]["grid"]
    other = await api.data(
        "hotline",
        RAISE,
        {"in": {"channel": "HOTLINE_96525", "riskLevel": "HIGH", "areaUnit": gid("Unit", quiet)}},
    )
    assert await contacts.outbox(number_of(other["raiseAlert"]["alert"]["id"])) == []


async def test_an_alert_whose_mutation_fails_leaves_no_notification(
    api: Api, contacts: Contacts, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The outbox rows are written (and flushed) with the alert, then the mutation fails: both
    are rolled back together."""
    grid = api.district.communities[3]["grid"]
    await contacts.add(grid, Channel.SMS, "13800000011")
    written: list[int] = []
    enqueue = alert_service.enqueue_for_alert

    async def then_fail(*args: Any, **kwargs: Any) -> list[int]:
        written.extend(await enqueue(*args, **kwargs))
        raise DomainError(ErrorCode.CONFLICT, "测试：写入通知之后失败")

    monkeypatch.setattr(alert_service, "enqueue_for_alert", then_fail)
    before = await _newest_alert(api)
    failed = await api.data(
        "hotline",
        RAISE,
        {"in": {"channel": "POLICE_110", "riskLevel": "HIGH", "areaUnit": gid("Unit", grid)}},
    )
    assert failed["raiseAlert"] == {"alert": None, "errors": [{"code": "CONFLICT"}]}
    assert len(written) == 1, "the notification was written before the failure"
    assert await _newest_alert(api) == before, "no alert"
    async with system_session(api.engine, reason="test: nothing left") as s:
        n = m.Notification
        left = await s.execute(select(func.count()).where(n.id.in_(written)))
        assert left.scalar_one() == 0, "and no notification"


async def test_every_way_an_alert_is_created_notifies_its_unit(
    api: Api, contacts: Contacts
) -> None:
    """raiseAlert, openCase and setCaseRiskLevel (routing), a self-harm assessment, a screening
    import and an escalation each write one notification per channel of the alert's unit."""
    await contacts.everywhere()
    created: dict[str, int] = {}

    async def newest(source: str, since: int) -> None:
        alert_id = await _newest_alert(api)
        assert alert_id > since, source
        created[source] = alert_id

    grid = api.district.communities[0]["grid"]  # grid.donghu's: someone there may act on it
    mark = await _newest_alert(api)
    raised = await api.data(
        "hotline",
        RAISE,
        {"in": {"channel": "HOTLINE_96525", "riskLevel": "LOW", "areaUnit": gid("Unit", grid)}},
    )
    created["raiseAlert"] = number_of(raised["raiseAlert"]["alert"]["id"])

    person = await api.data(
        "social.donghu",
        """mutation($g: ID!) { createPerson(input: {name: "通知测试对象", gender: FEMALE,
        birthDate: "1979-03-03", residenceUnit: $g}) { person { id } } }""",
        {"g": gid("Unit", grid)},
    )
    mark = await _newest_alert(api)
    opened = await api.data(
        "social.donghu",
        """mutation($s: ID!) { openCase(input: {subject: $s, sourceChannel: GRID_REPORT,
        riskLevel: LOW}) { case { id } errors { code } } }""",
        {"s": person["createPerson"]["person"]["id"]},
    )
    assert opened["openCase"]["errors"] == []
    await newest("openCase", mark)
    mark = await _newest_alert(api)
    changed = await api.data(
        "social.donghu",
        """mutation($id: ID!) { setCaseRiskLevel(id: $id, riskLevel: HIGH,
        reason: "通知测试") { errors { code } } }""",
        {"id": opened["openCase"]["case"]["id"]},
    )
    assert changed["setCaseRiskLevel"]["errors"] == []
    await newest("setCaseRiskLevel", mark)

    mark = await _newest_alert(api)
    assessed = await api.data(
        "counselor",
        """mutation($in: RecordAssessmentInput!) { recordAssessment(input: $in) {
        alertRaised errors { code } } }""",
        {
            "in": {
                "case": gid("Case", api.district.records[0]["high_case"]),
                "instrument": "PHQ9",
                "answers": [1, 1, 0, 0, 0, 0, 0, 0, 2],
            }
        },
    )
    assert assessed["recordAssessment"]["alertRaised"] is True
    await newest("recordAssessment", mark)

    mark = await _newest_alert(api)
    await _screening_alert(api)
    await newest("importScreeningResults", mark)

    try:
        for source, alert_id in created.items():
            alert = await _alert(api, alert_id)
            risk = str(alert.risk_level)
            units = await _went_to(api, alert_id)
            expected = [(unit, Channel.EMAIL, risk, "pending") for unit in units]
            assert await contacts.outbox(alert_id) == expected, source
    finally:
        # test_screening counts its school's screening alerts: this one goes again.
        async with system_session(api.engine, reason="test: remove the screening alert") as s:
            screening = created["importScreeningResults"]
            await s.execute(delete(m.Notification).where(m.Notification.alert_id == screening))
            await s.execute(delete(m.Alert).where(m.Alert.id == screening))
            await s.commit()

    # Nobody acknowledges the hotline's alert in time: it escalates to where someone may act
    # (nobody may in the community, street or district: the duty officer's unit), which is
    # notified too.
    async with system_session(api.engine, reason="test: the deadline passes") as s:
        await s.execute(
            update(m.Alert)
            .where(m.Alert.id == created["raiseAlert"])
            .values(ack_deadline=utcnow() - timedelta(minutes=1))
        )
        await s.commit()
    await escalate_overdue(api.engine)
    duty = api.district.units["governance"]
    assert await contacts.outbox(created["raiseAlert"]) == [
        (min(grid, duty), Channel.EMAIL, "low", "pending"),
        (max(grid, duty), Channel.EMAIL, "low", "pending"),
    ]


async def _screening_alert(api: Api) -> None:
    """A school2 student whose screening answer flags self-harm (as test_screening does, with a
    student of this module's own: region 990303)."""
    body = f"990303{date(2011, 5, 5):%Y%m%d}{datetime.now(UTC).microsecond % 1000:03d}"
    number = body + id_check_char(body)
    async with system_session(api.engine, reason="test: a student") as s:
        await _student(
            s, api, number, api.district.communities[0]["grid"], api.district.units["school2"]
        )
        await s.commit()
    campaign = await api.data(
        "teacher.school2",
        CAMPAIGN,
        {"in": {"name": f"通知测试{datetime.now(UTC):%H%M%S%f}", "instrument": "PHQ9"}},
    )
    campaign_id = campaign["createScreeningCampaign"]["campaign"]["id"]
    imported = await api.data(
        "teacher.school2",
        IMPORT,
        {"in": {"campaign": campaign_id, "csv": phq9_csv([(number, 7, "1班", SELF_HARM)])}},
    )
    assert imported["importScreeningResults"]["alertsRaised"] == 1, imported


NEW_PERSON = {"name": "欧阳晓梅", "phone": "13912345678"}
SUMMARY = "来电者称其女儿今晚写下遗书并准备离家"


@pytest.fixture
def person_number() -> str:
    body = f"11010519850707{datetime.now(UTC).microsecond % 900 + 100:03d}"
    return body + id_check_char(body)


async def test_delivered_messages_carry_no_personal_data(
    api: Api, contacts: Contacts, person_number: str
) -> None:
    """An alert about a newly registered caller, with a summary, goes out by email, SMS and
    webhook: no message holds the caller's name, phone, ID number or the summary, nor any demo
    person's name, ID number, phone or text (the suite's privacy-scan list)."""
    grid = api.district.communities[3]["grid"]
    with SmtpReceiver() as smtp, HttpReceiver() as gateway, HttpReceiver() as robot:
        await contacts.add(grid, Channel.EMAIL, "duty@grid.example")
        await contacts.add(grid, Channel.SMS, "13800000012")
        await contacts.add(grid, Channel.WEBHOOK, robot.url("/cgi-bin/webhook/send?key=abc"))
        raised = await api.data(
            "hotline",
            RAISE,
            {
                "in": {
                    "channel": "HOTLINE_96525",
                    "riskLevel": "HIGH",
                    "areaUnit": gid("Unit", grid),
                    "summary": SUMMARY,
                    "newPerson": {**NEW_PERSON, "idNumber": person_number},
                }
            },
        )
        alert_id = number_of(raised["raiseAlert"]["alert"]["id"])
        senders = {
            Channel.EMAIL: SmtpSender(host="127.0.0.1", port=smtp.port, security=SmtpSecurity.NONE),
            Channel.SMS: SmsGatewaySender(url=gateway.url("/sms"), token="t"),
            Channel.WEBHOOK: WebhookSender(allowed_hosts=(robot.host,)),
        }
        report = await Delivery(
            engine=api.engine, senders=senders, link_base="https://xq.example/a/"
        ).run()
    assert report.sent >= 3
    assert {s for _, _, _, s in await contacts.outbox(alert_id)} == {"sent"}
    messages = [mail.everything for mail in smtp.mails]
    messages += [repr(r.body) + repr(r.headers) + r.body["text"] for r in gateway.requests]
    messages += [repr(r.body) + r.body["text"]["content"] for r in robot.requests]
    assert len(messages) >= 3
    personal = [NEW_PERSON["name"], NEW_PERSON["phone"], person_number, SUMMARY, "遗书"]
    for text in messages:
        assert raised["raiseAlert"]["alert"]["id"] in text, "the link names the alert"
        assert not [p for p in personal if p in text]
        assert observability.hits(text, observability.SECRETS) == []


@pytest.fixture
def background(api: Api) -> Iterator[tuple[TestClient, HttpReceiver]]:
    """A second server process on the same database whose lifespan runs the delivery worker
    every 50 ms, with an SMS gateway."""
    with HttpReceiver() as gateway:
        settings = api.app.state.settings
        app = create_app(
            type(settings)(
                database_url=api.url,
                key_dir=settings.key_dir,
                scheduler_seconds=0,
                notify=NotifySettings(
                    every_seconds=0.05, sms_url=gateway.url("/sms"), sms_token="t"
                ),
            ),
            telemetry=replace(observability.TELEMETRY, shutdowns=[]),
        )
        with TestClient(app) as client:
            yield client, gateway


async def test_the_server_delivers_in_the_background(
    api: Api, contacts: Contacts, background: tuple[TestClient, HttpReceiver]
) -> None:
    _, gateway = background
    grid = api.district.communities[3]["grid"]
    centre = api.district.units["governance"]  # a medium-risk alert is the governance centre's
    await contacts.add(centre, Channel.SMS, "13800000013")
    raised = await api.data(
        "hotline",
        RAISE,
        {"in": {"channel": "HOTLINE_96525", "riskLevel": "MEDIUM", "areaUnit": gid("Unit", grid)}},
    )
    alert_id = number_of(raised["raiseAlert"]["alert"]["id"])
    sent = [(centre, Channel.SMS, "medium", "sent")]
    for _ in range(400):  # up to 20 s
        if await contacts.outbox(alert_id) == sent:
            break
        await asyncio.sleep(0.05)
    assert await contacts.outbox(alert_id) == sent
    (request,) = [r for r in gateway.requests if r.body["to"] == ["13800000013"]]
    assert "中风险预警" in request.body["text"]
