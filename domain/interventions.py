"""Interventions (干预/服务): what was done for a case, by whom, with notes."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import ForeignKey
from sqlalchemy.orm import Mapped, mapped_column

from domain.base import Base, Id, Protected, UTCDateTime, enum_column, utcnow
from domain.classification import FieldClass, classified
from domain.sealing import Encrypted, Sealed, encrypted


class InterventionKind(StrEnum):
    COUNSELLING = "counselling"
    ASSESSMENT = "assessment"
    CRISIS_INTERVENTION = "crisis_intervention"
    HOME_VISIT = "home_visit"
    REFERRAL = "referral"
    TREATMENT = "treatment"
    MEDICATION_GUIDANCE = "medication_guidance"
    GROUP_ACTIVITY = "group_activity"
    HOTLINE_CALL = "hotline_call"
    CONDOLENCE_VISIT = "condolence_visit"
    EMERGENCY_RESPONSE = "emergency_response"


class Intervention(Sealed, Protected, Base):
    __tablename__ = "interventions"
    key_owners = (("person", "person_id"), ("family", "family_id"))
    """A case's notes are its subject's; a family visit's are the family's."""

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    case_id: Mapped[int | None] = mapped_column(ForeignKey("cases.id"), index=True)
    person_id: Mapped[int | None] = mapped_column(ForeignKey("persons.id"), index=True)
    """The case's subject, copied here (set exactly when ``case_id`` is)."""
    family_id: Mapped[int | None] = mapped_column(ForeignKey("families.id"), index=True)
    """For family-level services without a case (a volunteer's condolence visit, 慰问)."""
    kind: Mapped[InterventionKind] = mapped_column(
        enum_column(InterventionKind), info=classified(FieldClass.CASE_ADMIN)
    )
    performed_at: Mapped[datetime] = mapped_column(
        UTCDateTime, default=utcnow, index=True, info=classified(FieldClass.CASE_ADMIN)
    )
    staff_id: Mapped[int | None] = mapped_column(
        ForeignKey("staff.id"), info=classified(FieldClass.CASE_ADMIN)
    )
    unit_id: Mapped[int] = mapped_column(
        ForeignKey("units.id"), info=classified(FieldClass.CASE_ADMIN)
    )
    notes: Mapped[bytes | None] = mapped_column(Encrypted, info=encrypted(FieldClass.NARRATIVE))
    outcome: Mapped[bytes | None] = mapped_column(Encrypted, info=encrypted(FieldClass.NARRATIVE))
