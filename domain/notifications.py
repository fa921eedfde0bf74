"""Notifications (预警通知): an outbox of messages that tell a unit outside the browser that an
alert is waiting for it, and a record of every attempt to deliver one.

An alert reaches a browser tab only while one is open; grid workers are on phones. So whenever
an alert reaches a unit (raised, routed, escalated), one ``Notification`` per channel the unit
has a contact on (``UnitContact``: a duty mailbox, a duty phone, a group webhook) is written *in
the same transaction as the alert*: an alert that commits has its notifications, and a mutation
that rolls back leaves neither. A worker (``api.delivery``) delivers them later, with retries.

None of these rows holds personal data, and none ever will: a notification carries the alert's
id, the unit, the channel, the tier and the deadline (copied when it is enqueued, so delivering
it never reads an alert), and delivery state; an attempt carries outcome codes and the
receiver's message id. The message is rendered from those alone (``render``): no name, phone, ID
number or summary can be in it because none is ever read. That is why these models are not
``Protected``: the gate's read guard exists to keep personal data behind the privacy policy,
and the delivery worker, an operator task outside any request, must read and update these rows
without a subject. Writing a notification in a request still goes through the gate under the
alert's permit and is logged as a write on the alert (``api.services.notify``).
"""

from __future__ import annotations

import base64
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from enum import StrEnum

from sqlalchemy import ForeignKey, Index, Integer, String, UniqueConstraint, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from domain.alerts import Alert, AlertStatus
from domain.base import Base, Id, UTCDateTime, enum_column, utcnow
from domain.cases import RiskLevel


class Channel(StrEnum):
    EMAIL = "email"
    SMS = "sms"
    WEBHOOK = "webhook"
    """A WeCom (企业微信) or DingTalk (钉钉) group robot, or anything that takes the same JSON."""


class NotificationStatus(StrEnum):
    PENDING = "pending"
    """Not tried yet."""
    FAILED = "failed"
    """The last attempt failed; another is scheduled at ``next_attempt_at``."""
    SENT = "sent"
    DEAD = "dead"
    """Given up: the attempts ran out, or the receiver refused it for good."""


DUE = (NotificationStatus.PENDING, NotificationStatus.FAILED)


class AttemptOutcome(StrEnum):
    SENT = "sent"
    FAILED = "failed"


class UnitContact(Base):
    """Where a unit is told about its alerts, per channel: an email address, a phone number the
    SMS gateway texts, or a group robot's webhook URL. These are a unit's duty contacts (值班),
    set by an operator (``xinqiao notify contacts``), not the people the platform serves. A
    webhook URL usually embeds the robot's key: treat this table like the rest of the database.
    """

    __tablename__ = "unit_contacts"
    __table_args__ = (UniqueConstraint("unit_id", "channel", "address"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    unit_id: Mapped[int] = mapped_column(ForeignKey("units.id"), index=True)
    channel: Mapped[Channel] = mapped_column(enum_column(Channel))
    address: Mapped[str] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Notification(Base):
    """One message to one unit about one alert over one channel (see the module docstring for
    why this is not a ``Protected`` model: it holds no personal data by construction)."""

    __tablename__ = "notifications"
    __table_args__ = (
        UniqueConstraint("alert_id", "unit_id", "channel"),
        Index("ix_notifications_due", "status", "next_attempt_at"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    alert_id: Mapped[int] = mapped_column(ForeignKey("alerts.id"), index=True)
    unit_id: Mapped[int] = mapped_column(ForeignKey("units.id"), index=True)
    """The unit the alert was addressed to when this was enqueued."""
    channel: Mapped[Channel] = mapped_column(enum_column(Channel))
    risk_level: Mapped[RiskLevel] = mapped_column(enum_column(RiskLevel))
    deadline: Mapped[datetime] = mapped_column(UTCDateTime)
    """The alert's acknowledgement deadline when this was enqueued (what the message says)."""
    status: Mapped[NotificationStatus] = mapped_column(enum_column(NotificationStatus))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    """Attempts started. Claiming a notification increments it, so it is also the claim's
    version: a worker records its outcome only if nobody has claimed the row since."""
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime)
    """When it is next due; while a worker holds it, the end of that worker's lease."""
    last_error_code: Mapped[str | None] = mapped_column(String(64))
    """A code (``http_503``, ``smtp_unreachable``), never a receiver's text, which could echo
    a recipient's address."""
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    escalated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    """A high-risk notification that was not delivered (dead, or still undelivered at its
    deadline) escalates its alert once; this marks that it has."""


class NotificationAttempt(Base):
    """One delivery attempt and how it ended. ``outcome`` is empty while the attempt runs and
    stays empty if the worker died during it (the lease then lapses and the next try follows)."""

    __tablename__ = "notification_attempts"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    notification_id: Mapped[int] = mapped_column(ForeignKey("notifications.id"), index=True)
    number: Mapped[int] = mapped_column(Integer)
    worker: Mapped[str] = mapped_column(String(100))
    """Which process tried (host:pid:run), to tell concurrent workers apart."""
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    outcome: Mapped[AttemptOutcome | None] = mapped_column(enum_column(AttemptOutcome))
    error_code: Mapped[str | None] = mapped_column(String(64))
    receipt: Mapped[str | None] = mapped_column(String(128))
    """The receiver's message id (SMTP Message-ID, the gateway's id), when it gave one."""


# -- pure rules ------------------------------------------------------------------------------

BACKOFF_CAP = timedelta(hours=1)


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how soon to try again: the n-th failure waits ``base * 2**(n-1)``, at most
    ``BACKOFF_CAP``; after ``max_attempts`` failures the notification is dead."""

    max_attempts: int = 6
    base: timedelta = timedelta(seconds=30)

    def delay(self, failed_attempts: int) -> timedelta:
        exponent = min(max(failed_attempts - 1, 0), 20)
        return min(self.base * (2**exponent), BACKOFF_CAP)


def notifications_for(
    alerts: Iterable[Alert],
    channels: Mapping[int, Iterable[Channel]],
    at: datetime,
    units: Mapping[int, Iterable[int]] | None = None,
) -> list[Notification]:
    """One pending notification per alert per unit it went to (``units``: alert id → units;
    by default its owner) per channel that unit has a contact on. A high-risk alert goes to
    every unit of the joint team at once, so each of them is told (ADR 0009)."""
    return [
        Notification(
            alert_id=alert.id,
            unit_id=unit_id,
            channel=channel,
            risk_level=alert.risk_level,
            deadline=alert.ack_deadline,
            status=NotificationStatus.PENDING,
            attempts=0,
            next_attempt_at=at,
            created_at=at,
        )
        for alert in alerts
        for unit_id in sorted(
            set(units.get(alert.id, ()) if units else ()) | {alert.target_unit_id}
        )
        for channel in sorted(set(channels.get(unit_id, ())))
    ]


async def enqueue_escalated(
    session: AsyncSession, before: Mapping[int, int], at: datetime
) -> list[Notification]:
    """Notifications for the alerts an escalation run moved at ``at`` (``before``: alert id →
    the unit it was addressed to), in the caller's transaction. An alert this run did not move
    (another run got there first) and one already at the top of the tree (re-armed for the same
    unit, which has been told) get none."""
    if not before:
        return []
    moved = [
        alert
        for alert in (
            await session.execute(
                select(Alert).where(
                    Alert.id.in_(list(before)),
                    Alert.routed_at == at,
                    Alert.status == AlertStatus.ESCALATED,
                )
            )
        ).scalars()
        if alert.target_unit_id != before[alert.id]
    ]
    channels = await contact_channels(session, {a.target_unit_id for a in moved})
    rows = notifications_for(moved, channels, at)
    session.add_all(rows)
    return rows


async def contact_channels(session: AsyncSession, units: Iterable[int]) -> dict[int, set[Channel]]:
    wanted = sorted(set(units))
    if not wanted:
        return {}
    c = UnitContact
    found = await session.execute(select(c.unit_id, c.channel).where(c.unit_id.in_(wanted)))
    out: dict[int, set[Channel]] = {}
    for unit_id, channel in found:
        out.setdefault(unit_id, set()).add(channel)
    return out


# -- the message -----------------------------------------------------------------------------

BEIJING = timezone(timedelta(hours=8), "北京时间")
TIER_NAMES = {RiskLevel.HIGH: "高风险", RiskLevel.MEDIUM: "中风险", RiskLevel.LOW: "低风险"}


@dataclass(frozen=True)
class Message:
    subject: str
    text: str
    reference: str
    """The notification's own reference (``xinqiao-n<id>``), for the receiver's deduplication."""


def alert_global_id(alert_id: int) -> str:
    """The alert's Relay global id, as the API and its frontends know it (``Alert:<id>``)."""
    return base64.b64encode(f"Alert:{alert_id}".encode()).decode()


def render(
    *,
    notification_id: int,
    alert_id: int,
    tier: RiskLevel,
    unit_name: str,
    deadline: datetime,
    link_base: str,
) -> Message:
    """The whole message, from the tier, the unit's name, the deadline and a link: these
    arguments are all it can contain, and none of them is about a person."""
    gid = alert_global_id(alert_id)
    link = f"{link_base}{gid}" if link_base else f"预警编号 {gid}"
    when = deadline.astimezone(BEIJING).strftime("%Y-%m-%d %H:%M")
    tier_name = TIER_NAMES[tier]
    subject = f"【心桥】{tier_name}预警待确认：{unit_name}"
    text = (
        f"【心桥】{unit_name}有一条{tier_name}预警待确认，请于{when}（北京时间）前登录确认。{link}"
    )
    return Message(subject=subject, text=text, reference=f"xinqiao-n{notification_id}")


def safe_receipt(value: object) -> str | None:
    """A receiver's message id, kept only if it looks like an id (never free text)."""
    if not isinstance(value, str | int):
        return None
    text = str(value).strip()
    allowed = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._:-@<>")
    if not text or len(text) > 128 or not set(text) <= allowed:
        return None
    return text
