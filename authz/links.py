"""Which person a record is about, as a SQL expression per entity.

Selected with every gated row so the access log can answer "who saw my record" for a person across
all the records about them (their cases, interventions, consents...), without a second query.
"""

from __future__ import annotations

from sqlalchemy import ColumnElement, SQLColumnExpression, select
from sqlalchemy.orm import QueryableAttribute

from authz.entities import Entity
from domain import models as m


def _subject_of(case_id: SQLColumnExpression[int]) -> ColumnElement[int]:
    return select(m.Case.subject_id).where(m.Case.id == case_id).scalar_subquery()


PersonLink = QueryableAttribute[int | None] | ColumnElement[int]
"""A person id column of the record's table (null when the record is about no one person), or a
subquery reaching it through the record's case; the gate selects it labelled."""

PERSON_LINKS: dict[Entity, PersonLink] = {
    Entity.PERSON: m.Person.id,
    Entity.CASE: m.Case.subject_id,
    Entity.GUARDIANSHIP: m.Guardianship.ward_id,
    Entity.FAMILY_MEMBER: m.FamilyMember.person_id,
    Entity.CONSENT: m.Consent.person_id,
    Entity.ALERT: m.Alert.person_id,
    Entity.INTERVENTION: m.Intervention.person_id,
    Entity.ASSESSMENT: m.Assessment.person_id,
    Entity.REFERRAL: m.Referral.person_id,
    Entity.CASE_STATUS_CHANGE: m.CaseStatusChange.person_id,
    Entity.CASE_ASSIGNMENT: _subject_of(m.CaseAssignment.case_id),
    Entity.CASE_CO_UNIT: _subject_of(m.CaseCoUnit.case_id),
    Entity.EMERGENCY_GRANT: _subject_of(m.EmergencyGrant.case_id),
    Entity.FOLLOW_UP: m.FollowUp.person_id,
}
