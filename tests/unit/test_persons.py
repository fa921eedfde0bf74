"""Derived, shareable values of ``Person`` and the sensitivity of population categories."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from domain.classification import FieldClass
from domain.persons import (
    CONSENT_AGE,
    MINOR_AGE,
    SENSITIVE_CATEGORIES,
    Person,
    PersonCategory,
    PopulationCategory,
)
from domain.values import age_band_of

EXPECTED_SENSITIVE = {
    PopulationCategory.BEREAVED_ONLY_CHILD,
    PopulationCategory.ONLY_CHILD_DISABLED_FAMILY,
    PopulationCategory.COMMUNITY_CORRECTIONS,
    PopulationCategory.RELEASED_PRISONER,
    PopulationCategory.DRUG_REHABILITATION,
    PopulationCategory.SEVERE_MENTAL_DISORDER,
    PopulationCategory.PETITIONER,
    PopulationCategory.VIOLENCE_VICTIM,
}


def years_ago(years: int) -> date:
    """The date ``years`` birthdays ago (28 February stands in for a missing 29th)."""
    today = date.today()
    try:
        return today.replace(year=today.year - years)
    except ValueError:
        return today.replace(year=today.year - years, day=28)


def person(**kw: object) -> Person:
    kw.setdefault("name", "张三")
    return Person(id=1, **kw)


# --- names and ages ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "masked"), [("张三", "张*"), ("欧阳娜娜", "欧***"), ("王", "王*"), ("", None)]
)
def test_masked_name(name: str, masked: str | None) -> None:
    source, derive = Person.derived_from["masked_name"]
    assert source == "name" and derive(name) == masked


def test_masked_name_never_contains_the_given_name() -> None:
    masked = Person.derived_from["masked_name"][1]("李小龙")
    assert masked is not None
    assert "小" not in masked and "龙" not in masked


def test_an_unknown_birth_year_counts_as_a_minor_under_14() -> None:
    """The overlays only tighten: without a birth year, the minors rules apply."""
    p = person(birth_year=None)
    assert p.is_minor is True
    assert p.is_under_consent_age is True
    assert age_band_of(None) is None


def test_age_thresholds() -> None:
    assert MINOR_AGE == 18
    assert CONSENT_AGE == 14


@pytest.mark.parametrize(
    ("years", "minor", "under_consent"),
    [
        (0, True, True),
        (13, True, True),
        (14, True, True),  # turns 14 this year: protected until the year ends
        (15, True, False),
        (17, True, False),
        (18, True, False),  # turns 18 this year: still treated as a minor
        (19, False, False),
        (40, False, False),
    ],
)
def test_minor_flags_err_protective_from_the_birth_year(
    years: int, minor: bool, under_consent: bool
) -> None:
    p = person(birth_year=date.today().year - years)
    assert p.is_minor is minor
    assert p.is_under_consent_age is under_consent


@pytest.mark.parametrize(
    ("birth", "band"),
    [
        (lambda: date.today(), "0-13"),
        (lambda: years_ago(14) + timedelta(days=1), "0-13"),
        (lambda: years_ago(14), "14-17"),
        (lambda: years_ago(18) + timedelta(days=1), "14-17"),
        (lambda: years_ago(18), "18-34"),
        (lambda: years_ago(40), "35-59"),
        (lambda: years_ago(80), "60+"),
    ],
    ids=["born-today", "14-tomorrow", "14-today", "18-tomorrow", "18-today", "40", "80"],
)
def test_the_age_band_comes_from_the_opened_birth_date(birth, band: str) -> None:  # type: ignore[no-untyped-def]
    assert Person.derived_from["age_band"][1](birth().isoformat()) == band


def test_under_consent_age_implies_minor() -> None:
    for years in range(0, 30):
        p = person(birth_year=date.today().year - years)
        assert not p.is_under_consent_age or p.is_minor


# --- categories ----------------------------------------------------------------------------


@pytest.mark.parametrize("category", list(PopulationCategory), ids=lambda c: c.value)
def test_category_sensitivity(category: PopulationCategory) -> None:
    assert category.sensitive is (category in EXPECTED_SENSITIVE)


def test_sensitive_set_matches_expectation() -> None:
    assert SENSITIVE_CATEGORIES == EXPECTED_SENSITIVE
    assert not any(
        c.sensitive
        for c in (
            PopulationCategory.STUDENT,
            PopulationCategory.LOW_INCOME,
            PopulationCategory.ELDERLY_ALONE,
            PopulationCategory.LEFT_BEHIND_CHILD,
        )
    )


def test_new_person_has_no_categories() -> None:
    p = person()
    assert p.categories == []
    assert p.sensitive_categories == []


def test_categories_split_into_basic_and_sensitive() -> None:
    p = person()
    p.set_categories(
        {
            PopulationCategory.STUDENT,
            PopulationCategory.PETITIONER,
            PopulationCategory.LOW_INCOME,
            PopulationCategory.VIOLENCE_VICTIM,
        }
    )
    assert p.categories == [PopulationCategory.LOW_INCOME, PopulationCategory.STUDENT]
    assert p.sensitive_categories == [
        PopulationCategory.PETITIONER,
        PopulationCategory.VIOLENCE_VICTIM,
    ]


def test_every_category_lands_in_exactly_one_list() -> None:
    p = person()
    p.set_categories(set(PopulationCategory))
    assert set(p.categories) | set(p.sensitive_categories) == set(PopulationCategory)
    assert not set(p.categories) & set(p.sensitive_categories)
    assert set(p.sensitive_categories) == EXPECTED_SENSITIVE
    assert all(not c.sensitive for c in p.categories)


def test_only_sensitive_categories_leave_basic_list_empty() -> None:
    p = person()
    p.set_categories({PopulationCategory.SEVERE_MENTAL_DISORDER})
    assert p.categories == []
    assert p.sensitive_categories == [PopulationCategory.SEVERE_MENTAL_DISORDER]


def test_set_categories_replaces_and_keeps_existing_rows() -> None:
    p = person()
    p.set_categories({PopulationCategory.STUDENT, PopulationCategory.DISABLED})
    kept = next(r for r in p.category_rows if r.category is PopulationCategory.STUDENT)
    p.set_categories({PopulationCategory.STUDENT, PopulationCategory.PETITIONER})
    assert p.categories == [PopulationCategory.STUDENT]
    assert p.sensitive_categories == [PopulationCategory.PETITIONER]
    assert any(r is kept for r in p.category_rows)
    assert all(isinstance(r, PersonCategory) for r in p.category_rows)
    p.set_categories(set())
    assert p.categories == [] and p.sensitive_categories == []


def test_derived_values_are_classified_for_disclosure() -> None:
    assert Person.derived_field_classes["masked_name"] is FieldClass.BASIC
    assert Person.derived_field_classes["categories"] is FieldClass.BASIC
    assert Person.derived_field_classes["sensitive_categories"] is FieldClass.SENSITIVE_CATEGORY
