"""Cases (个案): the unit of work, with a status state machine and a routing team.

Status moves only along ``TRANSITIONS``; closing and reopening need a reason because auditors and
the joint-meeting office ask why a case left the books.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import ForeignKey, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from domain.base import Base, Id, Protected, UTCDateTime, enum_column, utcnow
from domain.classification import FieldClass, classified
from domain.errors import DomainError, ErrorCode
from domain.sealing import Encrypted, Sealed, encrypted


class RiskLevel(StrEnum):
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"


class SourceChannel(StrEnum):
    HOTLINE_96525 = "hotline_96525"
    GRID_REPORT = "grid_report"
    SCHOOL_SCREENING = "school_screening"
    HOSPITAL = "hospital"
    POLICE_110 = "police_110"
    CITIZEN_12345 = "citizen_12345"
    WALK_IN = "walk_in"
    ONLINE_BOOKING = "online_booking"
    CONCERN = "concern"
    """Raised by a volunteer or an association about someone they serve (``raiseConcern``)."""


class CaseStatus(StrEnum):
    INTAKE = "intake"
    ASSESSING = "assessing"
    ACTIVE = "active"
    MONITORING = "monitoring"
    CLOSED = "closed"


TRANSITIONS: dict[CaseStatus, frozenset[CaseStatus]] = {
    CaseStatus.INTAKE: frozenset({CaseStatus.ASSESSING, CaseStatus.CLOSED}),
    CaseStatus.ASSESSING: frozenset({CaseStatus.ACTIVE, CaseStatus.MONITORING, CaseStatus.CLOSED}),
    CaseStatus.ACTIVE: frozenset({CaseStatus.MONITORING, CaseStatus.CLOSED}),
    CaseStatus.MONITORING: frozenset({CaseStatus.ACTIVE, CaseStatus.CLOSED}),
    CaseStatus.CLOSED: frozenset({CaseStatus.ASSESSING}),  # reopening
}
NEEDS_REASON = frozenset({CaseStatus.CLOSED})


class Case(Sealed, Protected, Base):
    __tablename__ = "cases"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    subject_id: Mapped[int] = mapped_column(ForeignKey("persons.id"), index=True)
    family_id: Mapped[int | None] = mapped_column(ForeignKey("families.id"), index=True)
    area_unit_id: Mapped[int] = mapped_column(
        ForeignKey("units.id"), index=True, info=classified(FieldClass.CASE_ADMIN)
    )
    """The community the case belongs to (the subject's residence when it was opened)."""
    source_channel: Mapped[SourceChannel] = mapped_column(
        enum_column(SourceChannel), info=classified(FieldClass.CASE_ADMIN)
    )
    risk_level: Mapped[RiskLevel] = mapped_column(
        enum_column(RiskLevel), index=True, info=classified(FieldClass.CASE_ADMIN)
    )
    status: Mapped[CaseStatus] = mapped_column(
        enum_column(CaseStatus), index=True, info=classified(FieldClass.CASE_ADMIN)
    )
    lead_unit_id: Mapped[int] = mapped_column(
        ForeignKey("units.id"), index=True, info=classified(FieldClass.CASE_ADMIN)
    )
    # Sealed under the subject's data key (domain.sealing): the domain may set plain text here
    # (closing sets the outcome), but the column type refuses it until the gate seals it.
    presenting_problem: Mapped[bytes | None] = mapped_column(
        Encrypted, info=encrypted(FieldClass.NARRATIVE)
    )
    support_plan: Mapped[bytes | None] = mapped_column(
        Encrypted, info=encrypted(FieldClass.NARRATIVE)
    )
    diagnosis: Mapped[bytes | None] = mapped_column(Encrypted, info=encrypted(FieldClass.CLINICAL))
    opened_at: Mapped[datetime] = mapped_column(
        UTCDateTime, default=utcnow, index=True, info=classified(FieldClass.CASE_ADMIN)
    )
    closed_at: Mapped[datetime | None] = mapped_column(
        UTCDateTime, info=classified(FieldClass.CASE_ADMIN)
    )
    closure_outcome: Mapped[bytes | None] = mapped_column(
        Encrypted, info=encrypted(FieldClass.NARRATIVE)
    )
    created_by_staff_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id"))

    key_owners = (("person", "subject_id"),)
    """A case's text is the subject's: sealed under their data key, erased with them."""

    def transition(self, to: CaseStatus, *, reason: str | None, at: datetime) -> CaseStatusChange:
        """Move to ``to`` or refuse with the reason; returns the history entry to store."""
        to = CaseStatus(to)
        current = CaseStatus(self.status)
        if to not in TRANSITIONS[current]:
            allowed = "、".join(sorted(s.value for s in TRANSITIONS[current])) or "无"
            raise DomainError(
                ErrorCode.INVALID_TRANSITION,
                f"个案状态不能从{current.value}变为{to.value}（可变为：{allowed}）",
                ("status",),
            )
        reason = reason.strip() if reason else None
        if to in NEEDS_REASON and not reason:
            raise DomainError(ErrorCode.REQUIRED, "结案须填写结案结果", ("reason",))
        change = CaseStatusChange(
            case_id=self.id,
            person_id=self.subject_id,
            from_status=current,
            to_status=to,
            reason=reason,
            changed_at=at,
        )
        if to == CaseStatus.CLOSED:
            self.closed_at = at
            self.closure_outcome = reason  # type: ignore[assignment]  # plain until the caller seals it
        elif current == CaseStatus.CLOSED:  # reopening: the old outcome no longer describes it
            self.closed_at = None
            self.closure_outcome = None
        self.status = to
        return change


class CaseStatusChange(Sealed, Protected, Base):
    """``reason`` is set in the clear by ``Case.transition``; the caller seals it before the
    flush (the column refuses plaintext)."""

    __tablename__ = "case_status_changes"
    key_owners = (("person", "person_id"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"), index=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("persons.id"), index=True)
    """The case's subject, copied here: their data key seals this row's text, and their erasure
    clears it."""
    from_status: Mapped[CaseStatus] = mapped_column(
        enum_column(CaseStatus), info=classified(FieldClass.CASE_ADMIN)
    )
    to_status: Mapped[CaseStatus] = mapped_column(
        enum_column(CaseStatus), info=classified(FieldClass.CASE_ADMIN)
    )
    reason: Mapped[bytes | None] = mapped_column(Encrypted, info=encrypted(FieldClass.NARRATIVE))
    changed_at: Mapped[datetime] = mapped_column(
        UTCDateTime, default=utcnow, info=classified(FieldClass.CASE_ADMIN)
    )
    changed_by_staff_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id"))


class CaseCoUnit(Protected, Base):
    """A co-handling unit (协同单位) of a case: part of the case team."""

    __tablename__ = "case_co_units"
    __table_args__ = (UniqueConstraint("case_id", "unit_id"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"), index=True)
    unit_id: Mapped[int] = mapped_column(
        ForeignKey("units.id"), index=True, info=classified(FieldClass.CASE_ADMIN)
    )


class CaseAssignment(Protected, Base):
    """A worker on a case. Ending an assignment (``ended_at``) ends the access it gave."""

    __tablename__ = "case_assignments"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"), index=True)
    staff_id: Mapped[int] = mapped_column(
        ForeignKey("staff.id"), index=True, info=classified(FieldClass.CASE_ADMIN)
    )
    assigned_at: Mapped[datetime] = mapped_column(
        UTCDateTime, default=utcnow, info=classified(FieldClass.CASE_ADMIN)
    )
    ended_at: Mapped[datetime | None] = mapped_column(
        UTCDateTime, info=classified(FieldClass.CASE_ADMIN)
    )
