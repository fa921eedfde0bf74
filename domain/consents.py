"""Consents (知情同意): who agreed to what sharing, with whom, for what, until when.

Withdrawal is immediate: a consent is in force only while ``withdrawn_at`` is empty and
``valid_until`` has not passed, and every referral that rests on it checks that in SQL.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from domain.base import Base, Id, Protected, UTCDateTime, enum_column, utcnow
from domain.classification import FieldClass, classified
from domain.errors import DomainError, ErrorCode


class ConsentGiver(StrEnum):
    SUBJECT = "subject"
    GUARDIAN = "guardian"


class Consent(Protected, Base):
    __tablename__ = "consents"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("persons.id"), index=True)
    given_by: Mapped[ConsentGiver] = mapped_column(
        enum_column(ConsentGiver), info=classified(FieldClass.CASE_ADMIN)
    )
    guardian_id: Mapped[int | None] = mapped_column(ForeignKey("persons.id"))
    recipient_unit_id: Mapped[int] = mapped_column(
        ForeignKey("units.id"), info=classified(FieldClass.CASE_ADMIN)
    )
    purpose: Mapped[str] = mapped_column(String(200), info=classified(FieldClass.CASE_ADMIN))
    scope: Mapped[str] = mapped_column(String(200), info=classified(FieldClass.CASE_ADMIN))
    """Comma-separated field classes the consent covers."""
    given_at: Mapped[datetime] = mapped_column(
        UTCDateTime, default=utcnow, info=classified(FieldClass.CASE_ADMIN)
    )
    valid_until: Mapped[datetime | None] = mapped_column(
        UTCDateTime, info=classified(FieldClass.CASE_ADMIN)
    )
    withdrawn_at: Mapped[datetime | None] = mapped_column(
        UTCDateTime, info=classified(FieldClass.CASE_ADMIN)
    )

    def in_force(self, now: datetime) -> bool:
        return self.withdrawn_at is None and (self.valid_until is None or self.valid_until > now)

    def withdraw(self, at: datetime) -> None:
        if self.withdrawn_at is not None:
            raise DomainError(ErrorCode.INVALID_TRANSITION, "该同意已撤回")
        self.withdrawn_at = at
