"""Interventions (干预/服务): what was done for a case, by whom, with notes."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import ForeignKey, Text
from sqlalchemy.orm import Mapped, mapped_column

from domain.base import Base, Id, Protected, UTCDateTime, enum_column, utcnow
from domain.classification import FieldClass, classified


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


class Intervention(Protected, Base):
    __tablename__ = "interventions"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    case_id: Mapped[int | None] = mapped_column(ForeignKey("cases.id"), index=True)
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
    notes: Mapped[str | None] = mapped_column(Text, info=classified(FieldClass.NARRATIVE))
    outcome: Mapped[str | None] = mapped_column(Text, info=classified(FieldClass.NARRATIVE))
