"""Assessments (测评) with standard instruments. Scoring rules arrive with the casework issue."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import JSON, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from domain.base import Base, Id, Protected, UTCDateTime, enum_column, utcnow
from domain.classification import FieldClass, classified


class Instrument(StrEnum):
    PHQ9 = "phq9"
    GAD7 = "gad7"
    EPDS = "epds"
    AD8 = "ad8"


class Assessment(Protected, Base):
    __tablename__ = "assessments"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"), index=True)
    instrument: Mapped[Instrument] = mapped_column(
        enum_column(Instrument), info=classified(FieldClass.CLINICAL)
    )
    answers: Mapped[list[int]] = mapped_column(JSON, info=classified(FieldClass.CLINICAL))
    score: Mapped[int] = mapped_column(Integer, info=classified(FieldClass.CLINICAL))
    severity: Mapped[str] = mapped_column(String(32), info=classified(FieldClass.CLINICAL))
    administered_at: Mapped[datetime] = mapped_column(
        UTCDateTime, default=utcnow, info=classified(FieldClass.CASE_ADMIN)
    )
    staff_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id"))
