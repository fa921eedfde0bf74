"""Follow-ups (随访): scheduled contacts of a case's support plan, done by an intervention or
dropped with a reason. A case closes only when none is left open (or with a reason to drop them).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey
from sqlalchemy.orm import Mapped, mapped_column

from domain.base import Base, Id, Protected, UTCDateTime, enum_column, utcnow
from domain.classification import FieldClass, classified
from domain.errors import DomainError, ErrorCode
from domain.interventions import InterventionKind
from domain.sealing import Encrypted, Sealed, encrypted


class FollowUp(Sealed, Protected, Base):
    """``dropped_reason`` is set in the clear by ``drop``; the caller seals it before the flush."""

    __tablename__ = "follow_ups"
    key_owners = (("person", "person_id"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"), index=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("persons.id"), index=True)
    """The case's subject, copied here: their data key seals this row's text, and their erasure
    clears it."""
    kind: Mapped[InterventionKind] = mapped_column(
        enum_column(InterventionKind), info=classified(FieldClass.CASE_ADMIN)
    )
    due_at: Mapped[datetime] = mapped_column(
        UTCDateTime, index=True, info=classified(FieldClass.CASE_ADMIN)
    )
    assigned_staff_id: Mapped[int | None] = mapped_column(
        ForeignKey("staff.id"), index=True, info=classified(FieldClass.CASE_ADMIN)
    )
    done_at: Mapped[datetime | None] = mapped_column(
        UTCDateTime, index=True, info=classified(FieldClass.CASE_ADMIN)
    )
    intervention_id: Mapped[int | None] = mapped_column(ForeignKey("interventions.id"))
    dropped_reason: Mapped[bytes | None] = mapped_column(
        Encrypted, info=encrypted(FieldClass.NARRATIVE)
    )
    created_at: Mapped[datetime] = mapped_column(
        UTCDateTime, default=utcnow, info=classified(FieldClass.CASE_ADMIN)
    )

    @property
    def open(self) -> bool:
        return self.done_at is None

    def complete(self, *, intervention_id: int, at: datetime) -> None:
        if self.done_at is not None:
            raise DomainError(ErrorCode.INVALID_TRANSITION, "该随访已完成或已取消", ("followUp",))
        self.done_at = at
        self.intervention_id = intervention_id

    def drop(self, *, reason: str, at: datetime) -> None:
        if self.done_at is not None:
            raise DomainError(ErrorCode.INVALID_TRANSITION, "该随访已完成或已取消", ("followUp",))
        self.done_at = at
        self.dropped_reason = reason  # type: ignore[assignment]  # plain until the caller seals it
