"""Break-glass grants (紧急访问): time-boxed access to one case, with a stated reason.

A grant is never silent: it is written to the access log when made, every disclosure under it
carries the ``emergency`` relation, and auditors review each one (``reviewed_at``).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import ForeignKey, Text
from sqlalchemy.orm import Mapped, mapped_column

from domain.base import Base, Id, Protected, UTCDateTime, utcnow
from domain.classification import FieldClass, classified
from domain.errors import DomainError, ErrorCode

DEFAULT_DURATION = timedelta(hours=4)
MAX_DURATION = timedelta(hours=24)
MIN_REASON = 10


class EmergencyGrant(Protected, Base):
    __tablename__ = "emergency_grants"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"), index=True)
    staff_id: Mapped[int] = mapped_column(ForeignKey("staff.id"), index=True)
    reason: Mapped[str] = mapped_column(Text, info=classified(FieldClass.CASE_ADMIN))
    granted_at: Mapped[datetime] = mapped_column(
        UTCDateTime, default=utcnow, index=True, info=classified(FieldClass.CASE_ADMIN)
    )
    expires_at: Mapped[datetime] = mapped_column(
        UTCDateTime, index=True, info=classified(FieldClass.CASE_ADMIN)
    )
    reviewed_at: Mapped[datetime | None] = mapped_column(
        UTCDateTime, info=classified(FieldClass.CASE_ADMIN)
    )
    reviewed_by_staff_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id"))
    review_comment: Mapped[str | None] = mapped_column(Text, info=classified(FieldClass.CASE_ADMIN))

    @staticmethod
    def check(*, reason: str, duration: timedelta) -> None:
        if len(reason.strip()) < MIN_REASON:
            raise DomainError(
                ErrorCode.REQUIRED, f"紧急访问须说明理由（至少{MIN_REASON}个字）", ("reason",)
            )
        if not timedelta(minutes=5) <= duration <= MAX_DURATION:
            raise DomainError(ErrorCode.INVALID, "紧急访问时长须在5分钟到24小时之间", ("minutes",))

    @classmethod
    def open(
        cls,
        *,
        case_id: int,
        staff_id: int,
        reason: str,
        at: datetime,
        duration: timedelta = DEFAULT_DURATION,
    ) -> EmergencyGrant:
        cls.check(reason=reason, duration=duration)
        text = reason.strip()
        return cls(
            case_id=case_id, staff_id=staff_id, reason=text, granted_at=at, expires_at=at + duration
        )

    def review(self, *, staff_id: int, comment: str, at: datetime) -> None:
        if self.reviewed_at is not None:
            raise DomainError(ErrorCode.INVALID_TRANSITION, "该紧急访问已审查")
        if not comment.strip():
            raise DomainError(ErrorCode.REQUIRED, "审查须填写意见", ("comment",))
        self.reviewed_at = at
        self.reviewed_by_staff_id = staff_id
        self.review_comment = comment.strip()
