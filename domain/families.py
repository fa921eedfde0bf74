"""Families, their members, and the volunteers linked to them (挂钩志愿者)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import Boolean, ForeignKey, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from domain.base import Base, Id, Protected, UTCDateTime, enum_column, utcnow
from domain.classification import FieldClass, classified
from domain.sealing import Encrypted, Sealed, encrypted


class SpecialFamilyType(StrEnum):
    """计生特殊家庭: a family that lost its only child, or whose only child is disabled."""

    BEREAVED_ONLY_CHILD = "bereaved_only_child"  # 失独
    ONLY_CHILD_DISABLED = "only_child_disabled"  # 伤残


class MemberRelationship(StrEnum):
    HEAD = "head"
    SPOUSE = "spouse"
    CHILD = "child"
    PARENT = "parent"
    GRANDPARENT = "grandparent"
    GRANDCHILD = "grandchild"
    SIBLING = "sibling"
    OTHER = "other"


class Family(Sealed, Protected, Base):
    __tablename__ = "families"
    key_owners = (("family", "id"),)
    """Family-level text has the family's own key: it is about several people at once."""

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    residence_unit_id: Mapped[int] = mapped_column(
        ForeignKey("units.id"), index=True, info=classified(FieldClass.BASIC)
    )
    special_type: Mapped[SpecialFamilyType | None] = mapped_column(
        enum_column(SpecialFamilyType), info=classified(FieldClass.SENSITIVE_CATEGORY)
    )
    circumstances: Mapped[bytes | None] = mapped_column(
        Encrypted, info=encrypted(FieldClass.FAMILY_CIRCUMSTANCE)
    )
    created_at: Mapped[datetime] = mapped_column(
        UTCDateTime, default=utcnow, info=classified(FieldClass.BASIC)
    )


class FamilyMember(Protected, Base):
    __tablename__ = "family_members"
    __table_args__ = (UniqueConstraint("family_id", "person_id"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    family_id: Mapped[int] = mapped_column(ForeignKey("families.id"), index=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("persons.id"), index=True)
    relationship: Mapped[MemberRelationship] = mapped_column(
        enum_column(MemberRelationship), info=classified(FieldClass.BASIC)
    )


class VolunteerLink(Sealed, Protected, Base):
    __tablename__ = "volunteer_links"
    key_owners = (("family", "family_id"),)
    __table_args__ = (UniqueConstraint("family_id", "staff_id"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    family_id: Mapped[int] = mapped_column(ForeignKey("families.id"), index=True)
    staff_id: Mapped[int] = mapped_column(ForeignKey("staff.id"), index=True)
    active: Mapped[bool] = mapped_column(
        Boolean, default=True, info=classified(FieldClass.CASE_ADMIN)
    )
    note: Mapped[bytes | None] = mapped_column(Encrypted, info=encrypted(FieldClass.NARRATIVE))
