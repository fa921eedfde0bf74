"""Referrals (转介): a case offered to another unit, giving access only while active."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from domain.base import Base, Id, Protected, UTCDateTime, enum_column, utcnow
from domain.classification import FieldClass, classified
from domain.errors import DomainError, ErrorCode
from domain.sealing import Encrypted, Sealed, encrypted


class ReferralStatus(StrEnum):
    OFFERED = "offered"
    ACCEPTED = "accepted"
    DECLINED = "declined"
    CLOSED = "closed"


class Referral(Sealed, Protected, Base):
    __tablename__ = "referrals"
    key_owners = (("person", "person_id"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"), index=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("persons.id"), index=True)
    """The case's subject, copied here: their data key seals this row's text, and their erasure
    clears it."""
    from_unit_id: Mapped[int] = mapped_column(
        ForeignKey("units.id"), info=classified(FieldClass.CASE_ADMIN)
    )
    to_unit_id: Mapped[int] = mapped_column(
        ForeignKey("units.id"), index=True, info=classified(FieldClass.CASE_ADMIN)
    )
    purpose: Mapped[str] = mapped_column(String(200), info=classified(FieldClass.CASE_ADMIN))
    shared_classes: Mapped[str] = mapped_column(String(200), info=classified(FieldClass.CASE_ADMIN))
    status: Mapped[ReferralStatus] = mapped_column(
        enum_column(ReferralStatus), index=True, info=classified(FieldClass.CASE_ADMIN)
    )
    consent_id: Mapped[int | None] = mapped_column(ForeignKey("consents.id"))
    override_reason: Mapped[bytes | None] = mapped_column(
        Encrypted, info=encrypted(FieldClass.NARRATIVE)
    )
    """Why a high-risk case was referred without consent."""
    created_at: Mapped[datetime] = mapped_column(
        UTCDateTime, default=utcnow, info=classified(FieldClass.CASE_ADMIN)
    )
    responded_at: Mapped[datetime | None] = mapped_column(
        UTCDateTime, info=classified(FieldClass.CASE_ADMIN)
    )
    expires_at: Mapped[datetime | None] = mapped_column(
        UTCDateTime, info=classified(FieldClass.CASE_ADMIN)
    )

    def respond(self, *, accept: bool, at: datetime) -> None:
        if self.status != ReferralStatus.OFFERED:
            raise DomainError(ErrorCode.INVALID_TRANSITION, "该转介已处理")
        self.status = ReferralStatus.ACCEPTED if accept else ReferralStatus.DECLINED
        self.responded_at = at

    def close(self) -> None:
        if self.status in (ReferralStatus.CLOSED, ReferralStatus.DECLINED):
            raise DomainError(ErrorCode.INVALID_TRANSITION, "该转介已结束")
        self.status = ReferralStatus.CLOSED
