"""Field classification: every personal attribute of a protected model has a field class.

The allow-lists below are deliberately explicit, model by model. A new column on a protected model
must either be classified (``info=classified(...)``) or be added here with a reason; a column that
gets classified must be removed from here, so the lists never go stale.
"""

from __future__ import annotations

import pytest
from sqlalchemy import String, inspect

import domain.models as models
from domain.base import Base, Protected
from domain.classification import FieldClass, field_classes
from domain.persons import Person

# Keys: primary keys and foreign keys that only link rows (who is the subject, which case, which
# staff member created it). They carry no personal data of their own; the gate scopes them.
UNCLASSIFIED_KEYS: dict[str, frozenset[str]] = {
    "PartnerClient": frozenset({"id"}),
    "FollowUp": frozenset({"id", "case_id", "person_id", "intervention_id"}),
    "AccessEvent": frozenset({"id"}),
    "Alert": frozenset(
        {
            "id",
            "person_id",
            "case_id",
            "acknowledged_by_staff_id",
            "created_by_staff_id",
            "created_by_client_id",
        }
    ),
    "Assessment": frozenset({"id", "case_id", "person_id", "staff_id"}),
    "ScreeningCampaign": frozenset({"id", "created_by_staff_id"}),
    "Case": frozenset({"id", "subject_id", "family_id", "created_by_staff_id"}),
    "CaseAssignment": frozenset({"id", "case_id"}),
    "CaseCoUnit": frozenset({"id", "case_id"}),
    "CaseStatusChange": frozenset({"id", "case_id", "person_id", "changed_by_staff_id"}),
    "Consent": frozenset({"id", "person_id", "guardian_id"}),
    "Family": frozenset({"id"}),
    "FamilyMember": frozenset({"id", "family_id", "person_id"}),
    "Guardianship": frozenset({"id", "ward_id"}),
    "EmergencyGrant": frozenset({"id", "case_id", "staff_id", "reviewed_by_staff_id"}),
    "Intervention": frozenset({"id", "case_id", "person_id", "family_id"}),
    "Person": frozenset({"id", "created_by_staff_id"}),
    "Referral": frozenset({"id", "case_id", "person_id", "consent_id"}),
    "Staff": frozenset({"id"}),
    "VolunteerLink": frozenset({"id", "family_id", "staff_id"}),
}

# Bookkeeping columns that are neither keys nor personal data.
UNCLASSIFIED_BOOKKEEPING: dict[str, frozenset[str]] = {}

# Known gaps: unclassified columns that look like personal data (none now; keep it empty).
KNOWN_UNCLASSIFIED: dict[str, frozenset[str]] = {}


def domain_models() -> list[type]:
    """Every mapped class that ``domain.models`` gathers (other packages share ``Base`` too)."""
    exported = (getattr(models, name) for name in models.__all__)
    return sorted(
        (c for c in exported if isinstance(c, type) and issubclass(c, Base) and c is not Base),
        key=lambda c: c.__name__,
    )


def protected_models() -> list[type]:
    return [c for c in domain_models() if issubclass(c, Protected)]


def columns(model: type) -> dict[str, object]:
    return {attr.key: attr.columns[0] for attr in inspect(model).column_attrs}


def allowed(model: type) -> frozenset[str]:
    name = model.__name__
    return (
        UNCLASSIFIED_KEYS.get(name, frozenset())
        | UNCLASSIFIED_BOOKKEEPING.get(name, frozenset())
        | KNOWN_UNCLASSIFIED.get(name, frozenset())
    )


# --- field_classes -------------------------------------------------------------------------


def test_person_field_classes() -> None:
    classes = field_classes(Person)
    expected = {
        "name": FieldClass.IDENTITY,
        "birth_date": FieldClass.IDENTITY,
        "id_number": FieldClass.ID_NUMBER,
        "phone": FieldClass.CONTACT,
        "address": FieldClass.CONTACT,
        "gender": FieldClass.BASIC,
        "residence_unit_id": FieldClass.BASIC,
        "masked_name": FieldClass.BASIC,
        "age_band": FieldClass.BASIC,
        "is_minor": FieldClass.BASIC,
        "categories": FieldClass.BASIC,
        "sensitive_categories": FieldClass.SENSITIVE_CATEGORY,
    }
    for key, field_class in expected.items():
        assert classes.get(key) is field_class, key


def test_person_key_and_relationship_are_not_classified() -> None:
    classes = field_classes(Person)
    assert "id" not in classes
    assert "category_rows" not in classes


def test_identifying_person_data_is_never_basic() -> None:
    classes = field_classes(Person)
    for key in ("name", "birth_date", "id_number", "phone", "address", "sensitive_categories"):
        assert classes[key] is not FieldClass.BASIC, key


def test_field_classes_are_per_model() -> None:
    person = field_classes(Person)
    case = field_classes(models.Case)
    assert "name" in person and "name" not in case
    assert case["diagnosis"] is FieldClass.CLINICAL
    assert case["presenting_problem"] is FieldClass.NARRATIVE
    assert field_classes(Person) == person  # stable on repeated calls


@pytest.mark.parametrize("model", protected_models(), ids=lambda m: m.__name__)
def test_every_class_is_a_field_class_member(model: type) -> None:
    for key, field_class in field_classes(model).items():
        assert isinstance(field_class, FieldClass), (model.__name__, key)


@pytest.mark.parametrize("model", protected_models(), ids=lambda m: m.__name__)
def test_derived_field_classes_name_real_non_column_attributes(model: type) -> None:
    cols = columns(model)
    derived_from = getattr(model, "derived_from", {})
    for key in getattr(model, "derived_field_classes", {}):
        # An attribute of the model, or computed by the gate from an encrypted column.
        assert hasattr(model, key) or derived_from[key][0] in cols, (model.__name__, key)
        assert key not in cols, (model.__name__, key)


# --- completeness --------------------------------------------------------------------------


def test_models_module_exports_every_domain_model() -> None:
    """A model defined in ``domain`` but missing from ``domain.models`` would escape these tests."""
    in_domain = {
        m.class_ for m in Base.registry.mappers if m.class_.__module__.startswith("domain.")
    }
    assert in_domain == set(domain_models())
    for model in domain_models():
        assert model.__table__ in Base.metadata.tables.values()  # type: ignore[attr-defined]


def test_protected_models_are_the_expected_ones() -> None:
    names = {m.__name__ for m in protected_models()}
    assert {"Person", "Case", "Alert", "Consent", "Referral", "Staff"} <= names
    # The allow-lists name only protected models that exist.
    for table in (UNCLASSIFIED_KEYS, UNCLASSIFIED_BOOKKEEPING, KNOWN_UNCLASSIFIED):
        assert set(table) <= names


@pytest.mark.parametrize("model", protected_models(), ids=lambda m: m.__name__)
def test_every_protected_column_is_classified_or_allow_listed(model: type) -> None:
    classified = set(field_classes(model))
    unclassified = set(columns(model)) - classified
    unexpected = unclassified - allowed(model)
    assert not unexpected, (
        f"{model.__name__} has unclassified columns {sorted(unexpected)}: classify them "
        "(domain.classification.classified) or, for pure keys, add them to the allow-list"
    )


@pytest.mark.parametrize("model", protected_models(), ids=lambda m: m.__name__)
def test_allow_list_is_not_stale(model: type) -> None:
    cols = columns(model)
    classified = set(field_classes(model))
    for key in allowed(model):
        assert key in cols, f"{model.__name__}.{key} no longer exists: drop it from the allow-list"
        assert key not in classified, (
            f"{model.__name__}.{key} is classified now: drop it from the allow-list"
        )


@pytest.mark.parametrize("model", protected_models(), ids=lambda m: m.__name__)
def test_allow_listed_keys_really_are_keys(model: type) -> None:
    cols = columns(model)
    for key in UNCLASSIFIED_KEYS.get(model.__name__, frozenset()):
        column = cols[key]
        assert column.primary_key or column.foreign_keys, f"{model.__name__}.{key} is not a key"  # type: ignore[attr-defined]


@pytest.mark.parametrize("model", protected_models(), ids=lambda m: m.__name__)
def test_free_text_columns_are_classified(model: type) -> None:
    """Strings and texts can hold anything a person types, so none may be left unclassified."""
    classified = set(field_classes(model))
    known = KNOWN_UNCLASSIFIED.get(model.__name__, frozenset())
    for key, column in columns(model).items():
        if isinstance(column.type, String) and key not in known:  # type: ignore[attr-defined]
            assert key in classified, f"{model.__name__}.{key} is free text and unclassified"


def test_volunteer_link_note_is_classified() -> None:
    assert "note" in field_classes(models.VolunteerLink)
