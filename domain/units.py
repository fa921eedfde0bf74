"""Units: the organisation tree (district → street → community → grid, plus agencies).

Jurisdiction checks are subtree checks, asked on every request, so the tree is stored as a
materialised path (``/1/4/9/``): "is X under Y" is a prefix match on an indexed column.
Functional units (a police station, a school) are not areas themselves; ``area_unit_id`` names the
area whose subtree they serve.
"""

from __future__ import annotations

from enum import StrEnum

from sqlalchemy import ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from domain.base import Base, Id, enum_column
from domain.classification import FieldClass, classified


class UnitKind(StrEnum):
    DISTRICT = "district"
    STREET = "street"
    COMMUNITY = "community"
    GRID = "grid"
    SCHOOL = "school"
    HEALTH_CENTRE = "health_centre"
    MENTAL_HEALTH_CENTRE = "mental_health_centre"
    POLICE_STATION = "police_station"
    BUREAU = "bureau"
    CIVIL_AFFAIRS = "civil_affairs"
    WOMENS_FEDERATION = "womens_federation"
    DISABLED_FEDERATION = "disabled_federation"
    FAMILY_PLANNING = "family_planning"
    GOVERNANCE_CENTRE = "governance_centre"
    HOTLINE_CENTRE = "hotline_centre"
    JOINT_OFFICE = "joint_office"
    PARTNER_AGENCY = "partner_agency"

    @property
    def is_area(self) -> bool:
        return self in AREA_KINDS


AREA_KINDS = frozenset({UnitKind.DISTRICT, UnitKind.STREET, UnitKind.COMMUNITY, UnitKind.GRID})


class Unit(Base):
    __tablename__ = "units"
    __table_args__ = (Index("ix_units_path", "path"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), info=classified(FieldClass.BASIC))
    kind: Mapped[UnitKind] = mapped_column(enum_column(UnitKind), info=classified(FieldClass.BASIC))
    parent_id: Mapped[int | None] = mapped_column(
        ForeignKey("units.id"), index=True, info=classified(FieldClass.BASIC)
    )
    path: Mapped[str] = mapped_column(String(255), default="")
    """Materialised path of ids, ``/1/4/9/``; a unit's subtree is every path starting with it."""
    area_unit_id: Mapped[int | None] = mapped_column(
        ForeignKey("units.id"), info=classified(FieldClass.BASIC)
    )
    """For non-area units: the area they serve. Jurisdiction is that area's subtree."""

    def place_under(self, parent: Unit | None) -> None:
        """Set the path once the id is known (after a flush)."""
        if self.id is None:
            raise ValueError("unit must be flushed before it is placed")
        self.path = f"{parent.path if parent else '/'}{self.id}/"

    @property
    def jurisdiction_unit_id(self) -> int:
        return self.area_unit_id if self.area_unit_id is not None else self.id

    def contains(self, other_path: str) -> bool:
        return other_path.startswith(self.path)
