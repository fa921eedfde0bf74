"""Assessments (测评) with standard instruments (scored in ``domain.instruments``).

An assessment belongs to a case, or — a school screening result — to a campaign and a student
with no case. ``person_id`` is always set, so "who saw this person's results" is one column.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from enum import StrEnum
from typing import ClassVar

from sqlalchemy import Boolean, ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from domain.base import Base, Id, Protected, UTCDateTime, enum_column, utcnow
from domain.classification import FieldClass, classified
from domain.sealing import Encrypted, Sealed, encrypted


class Instrument(StrEnum):
    PHQ9 = "phq9"
    GAD7 = "gad7"
    EPDS = "epds"
    AD8 = "ad8"


class Assessment(Sealed, Protected, Base):
    __tablename__ = "assessments"
    key_owners = (("person", "person_id"),)
    opened_as: ClassVar[dict[str, Callable[[str], object]]] = {"answers": json.loads}
    __table_args__ = (
        # One result per student per campaign, whatever races two imports run.
        UniqueConstraint("campaign_id", "person_id"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("persons.id"), index=True)
    case_id: Mapped[int | None] = mapped_column(ForeignKey("cases.id"), index=True)
    campaign_id: Mapped[int | None] = mapped_column(
        ForeignKey("screening_campaigns.id"), index=True, info=classified(FieldClass.CASE_ADMIN)
    )
    grade: Mapped[int | None] = mapped_column(Integer, info=classified(FieldClass.CASE_ADMIN))
    """School grade at screening (1-12); screening results only."""
    class_name: Mapped[str | None] = mapped_column(
        String(20), info=classified(FieldClass.CASE_ADMIN)
    )
    flagged: Mapped[bool | None] = mapped_column(Boolean, info=classified(FieldClass.CLINICAL))
    """Screening: at or above the campaign's threshold, or a self-harm answer (an alert was
    raised). Clinical: it can reveal the self-harm answer."""
    instrument: Mapped[Instrument] = mapped_column(
        enum_column(Instrument), info=classified(FieldClass.CLINICAL)
    )
    answers: Mapped[bytes | None] = mapped_column(Encrypted, info=encrypted(FieldClass.CLINICAL))
    """Item answers as JSON (``[1, 0, 3]``), sealed. Score, severity and the flag stay in the clear:
    thresholds, escalation and the suppressed aggregates are computed in SQL."""
    score: Mapped[int] = mapped_column(Integer, info=classified(FieldClass.CLINICAL))
    severity: Mapped[str] = mapped_column(String(32), info=classified(FieldClass.CLINICAL))
    administered_at: Mapped[datetime] = mapped_column(
        UTCDateTime, default=utcnow, info=classified(FieldClass.CASE_ADMIN)
    )
    staff_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id"))
