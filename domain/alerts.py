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


class AlertResolution(StrEnum):
    """How an alert was handled when it closed."""

    CASE_OPENED = "case_opened"
    """A case was opened from it (``Alert.case_id`` links them)."""
    DISMISSED = "dismissed"
    """Looked into and not a crisis, with a reason."""


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
    closed_at: Mapped[datetime | None] = mapped_column(
        UTCDateTime, info=classified(FieldClass.CASE_ADMIN)
    )
    resolution: Mapped[AlertResolution | None] = mapped_column(
        enum_column(AlertResolution), info=classified(FieldClass.CASE_ADMIN)
    )
    dismissed_reason: Mapped[bytes | None] = mapped_column(
        Encrypted, info=encrypted(FieldClass.NARRATIVE)
    )
    possible_duplicates: Mapped[int] = mapped_column(
        Integer, default=0, info=classified(FieldClass.CASE_ADMIN)
    )
    """Intake found this many existing persons matching the caller's details: flagged for a
    person to resolve, never merged silently."""

    @classmethod
    def raised(
        cls,
        *,
        channel: SourceChannel,
        risk: RiskLevel,
        summary: str | None,
        area_unit_id: int,
        owner_unit_id: int,
        at: datetime,
        within: timedelta,
        person_id: int | None = None,
        case_id: int | None = None,
        staff_id: int | None = None,
        client_id: int | None = None,
        possible_duplicates: int = 0,
    ) -> Alert:
        """A new open alert, owned by ``owner_unit_id``, to be acknowledged ``within`` its
        tier's deadline. The summary is plain text here; the gate seals it on insert."""
        return cls(
            person_id=person_id,
            case_id=case_id,
            channel=channel,
            risk_level=risk,
            summary=summary,
            status=AlertStatus.OPEN,
            area_unit_id=area_unit_id,
            target_unit_id=owner_unit_id,
            raised_at=at,
            routed_at=at,
            ack_deadline=at + within,
            created_by_staff_id=staff_id,
            created_by_client_id=client_id,
            possible_duplicates=possible_duplicates,
        )

    def acknowledge(self, *, staff_id: int, at: datetime) -> None:
        if self.status not in (AlertStatus.OPEN, AlertStatus.ESCALATED):
            raise DomainError(ErrorCode.INVALID_TRANSITION, "该预警已确认或已关闭")
        self.status = AlertStatus.ACKNOWLEDGED
        self.acknowledged_at = at
        self.acknowledged_by_staff_id = staff_id

    def open_case(self, *, case_id: int, staff_id: int, at: datetime) -> None:
        """Handled by opening a case: taken on (if nobody had), linked to it and closed."""
        self._close(staff_id, at)
        self.case_id = case_id
        self.resolution = AlertResolution.CASE_OPENED

    def dismiss(self, *, reason: str, staff_id: int, at: datetime) -> None:
        """Handled without a case (looked into, not a crisis): taken on (if nobody had) and
        closed with the reason, which the gate seals (the column type refuses it in the clear)."""
        if not reason.strip():
            raise DomainError(ErrorCode.REQUIRED, "关闭预警须说明理由", ("reason",))
        self._close(staff_id, at)
        self.resolution = AlertResolution.DISMISSED
        self.dismissed_reason = reason.strip()  # type: ignore[assignment]  # sealed by the gate

    def _close(self, staff_id: int, at: datetime) -> None:
        if self.status == AlertStatus.CLOSED:
            raise DomainError(ErrorCode.INVALID_TRANSITION, "该预警已关闭")
        if self.status in (AlertStatus.OPEN, AlertStatus.ESCALATED):
            self.acknowledge(staff_id=staff_id, at=at)  # handling it is taking it on
        self.status = AlertStatus.CLOSED
        self.closed_at = at

    @property
    def overdue(self) -> bool:
        return self.status == AlertStatus.OPEN and utcnow() > self.ack_deadline


class AlertTarget(Base):
    """A unit an alert was addressed to. A high-risk alert goes to every unit of the joint team
    at once (police station, health centre, community and its grid teams); the alert's
    ``target_unit_id`` names the one that owns it now. Not personal data (an alert id and a
    unit id), so not ``Protected``: the gate reads it only inside the alert's relation
    predicate, and writes it only under the alert's permit."""

    __tablename__ = "alert_targets"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    alert_id: Mapped[int] = mapped_column(ForeignKey("alerts.id"), index=True)
    unit_id: Mapped[int] = mapped_column(ForeignKey("units.id"), index=True)
