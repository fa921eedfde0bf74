"""Every column of the schema that holds personal or clinical content is encrypted.

The rule is read from the column itself: a column classified as identity, ID number, contact,
narrative, clinical or family circumstance must be an encrypted column (or the blind index of
one), unless it is listed below with the reason it must stay in the clear. A new column of those
classes fails here until someone seals it or argues for it. A second net catches columns by name
(a ``notes`` column someone forgot to classify at all).
"""

from __future__ import annotations

import re

import pytest
from sqlalchemy import Column, LargeBinary

import domain.models  # noqa: F401  (every model registered)
from domain.base import Base
from domain.classification import FieldClass
from domain.sealing import Encrypted, Sealed, encrypted_columns, sealed_models

SEALED_CLASSES = frozenset(
    {
        FieldClass.IDENTITY,
        FieldClass.ID_NUMBER,
        FieldClass.CONTACT,
        FieldClass.NARRATIVE,
        FieldClass.CLINICAL,
        FieldClass.FAMILY_CIRCUMSTANCE,
    }
)

CLEAR_BY_DESIGN: dict[str, str] = {
    "persons.birth_year": "the minors and under-14 rules are SQL predicates (year only)",
    "guardianships.guardian_id": "a link to another person's (sealed) record",
    "guardianships.relationship": "an enum (father, mother...), no free text",
    "assessments.instrument": "which questionnaire; an enum",
    "assessments.score": "thresholds, escalation and suppressed aggregates run in SQL",
    "assessments.severity": "derived from the score; aggregated in SQL",
    "assessments.flagged": "derived from the score; aggregated in SQL",
}

PERSONAL_NAMES = re.compile(
    r"(^|_)(name|id_number|phone|address|birth_date|notes?|outcome|summary|reason|diagnosis"
    r"|answers|circumstances|problem|plan)$"
)
NOT_PERSONAL_BY_NAME: dict[str, str] = {
    "units.name": "an organisation's name",
    "staff.display_name": "a staff member's working name (staff are not case subjects)",
    "staff.username": "a login",
    "screening_campaigns.name": "a campaign's title",
    "partner_clients.name": "an organisation's name",
    "emergency_grants.reason": "why access was broken open: case administration, reviewed",
    "access_events.reason": "the operation's name (and an erasure's request reference)",
    "audit_checkpoints.reason": "periodic or manual",
    "persisted_queries.name": "an operation's name",
    "access_events.outcome": "allowed or denied",
    "access_events.client_address": "the caller's network address (staff, not subjects)",
    "audit_checkpoints.note": "an operator's note on a checkpoint",
    "key_checks.name": "which key a check value is for",
    "assessments.class_name": "a school class (初二3班), for the school's own follow-up",
    "unit_contacts.address": "a unit's duty mailbox, duty phone or group webhook, not a subject's",
    "notification_attempts.outcome": "sent or failed",
}


def _columns() -> list[tuple[str, Column[object]]]:
    return [
        (f"{table.name}.{column.name}", column)
        for table in Base.metadata.sorted_tables
        for column in table.columns
    ]


def _is_sealed(column: Column[object]) -> bool:
    return isinstance(column.type, Encrypted) and bool(column.info.get("encrypted"))


@pytest.mark.parametrize(
    ("name", "column"), _columns(), ids=lambda v: v if isinstance(v, str) else ""
)
def test_a_personal_column_is_encrypted_or_argued_for(name: str, column: Column[object]) -> None:
    field_class = column.info.get("field_class")
    if field_class not in SEALED_CLASSES or name in CLEAR_BY_DESIGN:
        return
    if column.info.get("blind_index_of"):
        assert isinstance(column.type, LargeBinary), f"{name}: a blind index is a keyed hash"
        return
    assert _is_sealed(column), f"{name} holds {field_class.value} data in the clear"


@pytest.mark.parametrize(
    ("name", "column"), _columns(), ids=lambda v: v if isinstance(v, str) else ""
)
def test_a_column_named_like_personal_text_is_encrypted(name: str, column: Column[object]) -> None:
    if not PERSONAL_NAMES.search(column.name) or name in NOT_PERSONAL_BY_NAME:
        return
    if name in CLEAR_BY_DESIGN or column.info.get("blind_index_of"):
        return
    assert _is_sealed(column), f"{name} looks like personal text but is not encrypted"


def test_the_clear_by_design_list_names_real_columns() -> None:
    names = {n for n, _ in _columns()}
    assert set(CLEAR_BY_DESIGN) <= names
    assert set(NOT_PERSONAL_BY_NAME) <= names, set(NOT_PERSONAL_BY_NAME) - names


def test_the_issue_s_fields_are_all_sealed() -> None:
    """The list the platform promises (issue 8), checked by name so a reclassification cannot
    quietly drop one."""
    promised = {
        "persons": {"name", "id_number", "phone", "address", "birth_date"},
        "families": {"circumstances"},
        "cases": {"presenting_problem", "support_plan", "diagnosis", "closure_outcome"},
        "interventions": {"notes", "outcome"},
        "assessments": {"answers"},
        "alerts": {"summary"},
        "case_status_changes": {"reason"},
    }
    by_table = {model.__tablename__: set(encrypted_columns(model)) for model in sealed_models(Base)}
    for table, columns in promised.items():
        assert columns <= by_table.get(table, set()), table


def test_only_models_that_name_their_key_owner_have_encrypted_columns() -> None:
    for mapper in Base.registry.mappers:
        model = mapper.class_
        if encrypted_columns(model):
            assert issubclass(model, Sealed), model.__name__
            for _, attr in model.key_owners:
                assert attr in model.__table__.columns, f"{model.__name__}.{attr}"
