"""Staff accounts and their roles. A staff member belongs to exactly one unit."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import ClassVar

from sqlalchemy import Boolean, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from domain.base import Base, Id, Protected, UTCDateTime, enum_column, utcnow
from domain.classification import FieldClass, classified


class Role(StrEnum):
    ADMIN = "admin"
    AUDITOR = "auditor"
    LEADER = "leader"
    OFFICE = "office"
    GRID_WORKER = "grid_worker"
    SOCIAL_WORKER = "social_worker"
    SCHOOL_COUNSELLOR = "school_counsellor"
    COUNSELLOR = "counsellor"
    PSYCHIATRIST = "psychiatrist"
    POLICE = "police"
    GOVERNANCE = "governance"
    CIVIL_AFFAIRS = "civil_affairs"
    FAMILY_PLANNING = "family_planning"
    VOLUNTEER = "volunteer"
    HOTLINE = "hotline"
    WOMENS_FEDERATION = "womens_federation"
    DISABLED_FEDERATION = "disabled_federation"
    PARTNER = "partner"
    DUTY_OFFICER = "duty_officer"
    """The district emergency duty officer (应急值班): where escalation ends, always able to act."""


class Staff(Protected, Base):
    """Staff are people too: the directory goes through the gate like everything else."""

    __tablename__ = "staff"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    username: Mapped[str] = mapped_column(
        String(64), unique=True, info=classified(FieldClass.BASIC)
    )
    display_name: Mapped[str] = mapped_column(String(100), info=classified(FieldClass.BASIC))
    unit_id: Mapped[int] = mapped_column(
        ForeignKey("units.id"), index=True, info=classified(FieldClass.BASIC)
    )
    active: Mapped[bool] = mapped_column(Boolean, default=True, info=classified(FieldClass.BASIC))
    password_hash: Mapped[str | None] = mapped_column(
        String(200), info=classified(FieldClass.SECRET)
    )
    created_at: Mapped[datetime] = mapped_column(
        UTCDateTime, default=utcnow, info=classified(FieldClass.BASIC)
    )
    role_rows: Mapped[list[StaffRole]] = relationship(lazy="selectin", cascade="all, delete-orphan")

    derived_field_classes: ClassVar[dict[str, FieldClass]] = {"roles": FieldClass.BASIC}
    """What an account is for belongs to the directory, like its name and unit."""

    @property
    def roles(self) -> tuple[Role, ...]:
        """The account's roles, in a stable order."""
        return tuple(sorted(r.role for r in self.role_rows))


class StaffRole(Base):
    __tablename__ = "staff_roles"

    staff_id: Mapped[int] = mapped_column(ForeignKey("staff.id"), primary_key=True)
    role: Mapped[Role] = mapped_column(enum_column(Role), primary_key=True)
