"""Alerts (预警): a crisis signal with an acknowledgement deadline."""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum

from sqlalchemy import ForeignKey, Integer
from sqlalchemy.orm import Mapped, mapped_column

from domain.base import Base, Id, Protected, UTCDateTime, enum_column, utcnow
from domain.cases import RiskLevel, SourceChannel
from domain.classification import FieldClass, classified
from domain.errors import DomainError, ErrorCode
from domain.sealing import Encrypted, Sealed, encrypted


class AlertStatus(StrEnum):
    OPEN = "open"
    ACKNOWLEDGED = "acknowledged"
    ESCALATED = "escalated"
    CLOSED = "closed"


ACK_DEADLINES: dict[RiskLevel, timedelta] = {
    RiskLevel.HIGH: timedelta(minutes=30),
    RiskLevel.MEDIUM: timedelta(hours=24),
    RiskLevel.LOW: timedelta(hours=72),
}


def parse_deadlines(text: str) -> dict[RiskLevel, timedelta]:
    """``high=30m,medium=24h,low=72h`` (any subset; the rest keep their defaults)."""
    out = dict(ACK_DEADLINES)
    units = {"m": timedelta(minutes=1), "h": timedelta(hours=1), "d": timedelta(days=1)}
    for part in filter(None, (p.strip() for p in text.split(","))):
        level, _, amount = part.partition("=")
        amount = amount.strip().lower()
        try:
            risk = RiskLevel(level.strip().lower())
            count = int(amount[:-1])
            unit = units[amount[-1:]]
        except (ValueError, KeyError):
            raise ValueError(f"ack deadline {part!r}: expected e.g. high=30m, medium=24h") from None
        if count <= 0:
            raise ValueError(f"ack deadline {part!r} must be positive")
        out[risk] = count * unit
    return out


class Alert(Sealed, Protected, Base):
    __tablename__ = "alerts"
    key_owners = (("person", "person_id"), ("alert", "id"))
    """About a known person: their key. An alert about nobody yet (a partner's report) has a
    key of its own; ``person_id`` is never set later."""

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    person_id: Mapped[int | None] = mapped_column(ForeignKey("persons.id"), index=True)
    case_id: Mapped[int | None] = mapped_column(ForeignKey("cases.id"), index=True)
    channel: Mapped[SourceChannel] = mapped_column(
        enum_column(SourceChannel), info=classified(FieldClass.CASE_ADMIN)
    )
    risk_level: Mapped[RiskLevel] = mapped_column(
        enum_column(RiskLevel), info=classified(FieldClass.CASE_ADMIN)
    )
    summary: Mapped[bytes | None] = mapped_column(Encrypted, info=encrypted(FieldClass.NARRATIVE))
    status: Mapped[AlertStatus] = mapped_column(
        enum_column(AlertStatus), index=True, info=classified(FieldClass.CASE_ADMIN)
    )
    area_unit_id: Mapped[int] = mapped_column(
        ForeignKey("units.id"), index=True, info=classified(FieldClass.CASE_ADMIN)
    )
    target_unit_id: Mapped[int] = mapped_column(
        ForeignKey("units.id"), index=True, info=classified(FieldClass.CASE_ADMIN)
    )
    raised_at: Mapped[datetime] = mapped_column(
        UTCDateTime, default=utcnow, index=True, info=classified(FieldClass.CASE_ADMIN)
    )
    routed_at: Mapped[datetime] = mapped_column(
        UTCDateTime, default=utcnow, index=True, info=classified(FieldClass.CASE_ADMIN)
    )
    """When the alert last reached a team: raised, or escalated (the live feed's watermark)."""
    ack_deadline: Mapped[datetime] = mapped_column(
        UTCDateTime, info=classified(FieldClass.CASE_ADMIN)
    )
    acknowledged_at: Mapped[datetime | None] = mapped_column(
        UTCDateTime, info=classified(FieldClass.CASE_ADMIN)
    )
    acknowledged_by_staff_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id"))
    created_by_staff_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id"), index=True)
    created_by_client_id: Mapped[int | None] = mapped_column(
        ForeignKey("partner_clients.id"), index=True
    )
    """A partner system's alert (it follows only its own; see ``authz.relations``)."""
    possible_duplicates: Mapped[int] = mapped_column(
        Integer, default=0, info=classified(FieldClass.CASE_ADMIN)
    )
    """Intake found this many existing persons matching the caller's details: flagged for a
    person to resolve, never merged silently."""

    def acknowledge(self, *, staff_id: int, at: datetime) -> None:
        if self.status not in (AlertStatus.OPEN, AlertStatus.ESCALATED):
            raise DomainError(ErrorCode.INVALID_TRANSITION, "该预警已确认或已关闭")
        self.status = AlertStatus.ACKNOWLEDGED
        self.acknowledged_at = at
        self.acknowledged_by_staff_id = staff_id

    @property
    def overdue(self) -> bool:
        return self.status == AlertStatus.OPEN and utcnow() > self.ack_deadline
