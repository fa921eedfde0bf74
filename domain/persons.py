"""Persons: the people the platform exists to help, and their guardians.

Identity, ID number and contact data are classified separately because different roles need
different slices (a volunteer needs a phone number, never an ID number).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime
from enum import StrEnum
from typing import ClassVar

from sqlalchemy import ForeignKey, Integer, LargeBinary
from sqlalchemy.orm import Mapped, mapped_column, relationship

from domain.base import Base, Id, Protected, UTCDateTime, enum_column, utcnow
from domain.classification import FieldClass, classified
from domain.sealing import Encrypted, Sealed, encrypted, indexed_by
from domain.values import age_band_of, could_be_under, mask_id_number, mask_name, utc_today

MINOR_AGE = 18
CONSENT_AGE = 14
"""PIPL art. 31: under 14, a guardian consents to any processing."""


class Gender(StrEnum):
    MALE = "male"
    FEMALE = "female"
    UNKNOWN = "unknown"


class PopulationCategory(StrEnum):
    """特殊人群. Sensitive ones are visible only to the role that owns them."""

    STUDENT = "student"
    SCHOOL_STAFF = "school_staff"
    WOMAN_CHILD_IN_DIFFICULTY = "woman_child_in_difficulty"
    LOW_INCOME = "low_income"
    EXTREME_POVERTY = "extreme_poverty"
    DISABLED = "disabled"
    DISABLED_FAMILY = "disabled_family"
    ELDERLY_ALONE = "elderly_alone"
    LEFT_BEHIND_CHILD = "left_behind_child"
    BEREAVED_ONLY_CHILD = "bereaved_only_child"  # 失独
    ONLY_CHILD_DISABLED_FAMILY = "only_child_disabled_family"  # 伤残
    COMMUNITY_CORRECTIONS = "community_corrections"
    RELEASED_PRISONER = "released_prisoner"
    DRUG_REHABILITATION = "drug_rehabilitation"
    SEVERE_MENTAL_DISORDER = "severe_mental_disorder"
    PETITIONER = "petitioner"
    VIOLENCE_VICTIM = "violence_victim"

    @property
    def sensitive(self) -> bool:
        return self in SENSITIVE_CATEGORIES


SENSITIVE_CATEGORIES = frozenset(
    {
        PopulationCategory.BEREAVED_ONLY_CHILD,
        PopulationCategory.ONLY_CHILD_DISABLED_FAMILY,
        PopulationCategory.COMMUNITY_CORRECTIONS,
        PopulationCategory.RELEASED_PRISONER,
        PopulationCategory.DRUG_REHABILITATION,
        PopulationCategory.SEVERE_MENTAL_DISORDER,
        PopulationCategory.PETITIONER,
        PopulationCategory.VIOLENCE_VICTIM,
    }
)


class Person(Sealed, Protected, Base):
    __tablename__ = "persons"
    key_owners = (("person", "id"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    name: Mapped[bytes | None] = mapped_column(Encrypted, info=encrypted(FieldClass.IDENTITY))
    """Encrypted, like the ID number, phone and address: sealed by the gate once the row has an
    id (``domain.sealing``); looked up by blind index, never by value."""
    gender: Mapped[Gender] = mapped_column(enum_column(Gender), info=classified(FieldClass.BASIC))
    birth_date: Mapped[bytes | None] = mapped_column(Encrypted, info=encrypted(FieldClass.IDENTITY))
    """Sealed (ISO date). Only the year stays in the clear, for the minors rules in SQL."""
    birth_year: Mapped[int | None] = mapped_column(Integer, info=classified(FieldClass.IDENTITY))
    """Decides the minors and under-14 rules, erring protective: someone counts as under 18 (14)
    until the end of the calendar year of their 18th (14th) birthday. A full date in the clear
    would, with the region and gender, narrow a person down; the year alone barely does."""
    id_number: Mapped[bytes | None] = mapped_column(Encrypted, info=encrypted(FieldClass.ID_NUMBER))
    phone: Mapped[bytes | None] = mapped_column(Encrypted, info=encrypted(FieldClass.CONTACT))
    address: Mapped[bytes | None] = mapped_column(Encrypted, info=encrypted(FieldClass.CONTACT))
    name_index: Mapped[bytes | None] = mapped_column(
        LargeBinary(32), index=True, info=indexed_by("name", FieldClass.IDENTITY)
    )
    id_number_index: Mapped[bytes | None] = mapped_column(
        LargeBinary(32), index=True, info=indexed_by("id_number", FieldClass.ID_NUMBER)
    )
    phone_index: Mapped[bytes | None] = mapped_column(
        LargeBinary(32), index=True, info=indexed_by("phone", FieldClass.CONTACT)
    )
    residence_unit_id: Mapped[int] = mapped_column(
        ForeignKey("units.id"), index=True, info=classified(FieldClass.BASIC)
    )
    school_unit_id: Mapped[int | None] = mapped_column(
        ForeignKey("units.id"), index=True, info=classified(FieldClass.BASIC)
    )
    created_at: Mapped[datetime] = mapped_column(
        UTCDateTime, default=utcnow, info=classified(FieldClass.BASIC)
    )
    created_by_staff_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id"), index=True)
    """Who registered the person (the hotline sees its own intakes for a short window)."""
    category_rows: Mapped[list[PersonCategory]] = relationship(
        lazy="selectin", cascade="all, delete-orphan", order_by="PersonCategory.category"
    )

    derived_field_classes: ClassVar[dict[str, FieldClass]] = {
        "masked_name": FieldClass.BASIC,
        "masked_id_number": FieldClass.ID_NUMBER,
        # With the birth date (identity) the first six and last four digits rebuild the whole
        # number, so the masked form is no weaker than the number itself: it exists so screens
        # show it by default and the full number is asked for (and logged) deliberately.
        "age_band": FieldClass.BASIC,
        "is_minor": FieldClass.BASIC,
        "categories": FieldClass.BASIC,
        "sensitive_categories": FieldClass.SENSITIVE_CATEGORY,
    }

    opened_as: ClassVar[dict[str, Callable[[str], object]]] = {"birth_date": date.fromisoformat}
    derived_from: ClassVar[dict[str, tuple[str, Callable[[str | None], str | None]]]] = {
        "masked_name": ("name", mask_name),
        "masked_id_number": ("id_number", mask_id_number),
        "age_band": ("birth_date", age_band_of),
        # 110105********1234: region and last four only (GB/T 35273 display limits).
    }
    """Derived from an encrypted field: the gate computes them from the opened value."""

    @property
    def is_minor(self) -> bool:
        """As the minors overlay decides it (unknown counts as a minor)."""
        return could_be_under(self.birth_year, utc_today(), MINOR_AGE)

    @property
    def is_under_consent_age(self) -> bool:
        """As the guardian-consent rule decides it (unknown counts as under 14)."""
        return could_be_under(self.birth_year, utc_today(), CONSENT_AGE)

    @property
    def categories(self) -> list[PopulationCategory]:
        return [r.category for r in self.category_rows if not r.category.sensitive]

    @property
    def sensitive_categories(self) -> list[PopulationCategory]:
        return [r.category for r in self.category_rows if r.category.sensitive]

    def set_categories(self, categories: set[PopulationCategory]) -> None:
        keep = {r.category: r for r in self.category_rows}
        self.category_rows = [keep.get(c) or PersonCategory(category=c) for c in sorted(categories)]


class PersonCategory(Base):
    """Reached only through its person (loaded with it), so not itself a gate entry point."""

    __tablename__ = "person_categories"

    person_id: Mapped[int] = mapped_column(ForeignKey("persons.id"), primary_key=True)
    category: Mapped[PopulationCategory] = mapped_column(
        enum_column(PopulationCategory), primary_key=True, index=True
    )


class GuardianRelationship(StrEnum):
    FATHER = "father"
    MOTHER = "mother"
    GRANDPARENT = "grandparent"
    OTHER_RELATIVE = "other_relative"
    APPOINTED = "appointed"


class Guardianship(Protected, Base):
    __tablename__ = "guardianships"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    ward_id: Mapped[int] = mapped_column(ForeignKey("persons.id"), index=True)
    guardian_id: Mapped[int] = mapped_column(
        ForeignKey("persons.id"), index=True, info=classified(FieldClass.IDENTITY)
    )
    """Who the guardian is: identity data of the ward, withheld with the rest of it."""
    relationship: Mapped[GuardianRelationship] = mapped_column(
        enum_column(GuardianRelationship), info=classified(FieldClass.IDENTITY)
    )
