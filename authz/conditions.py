"""Conditions: attributes of a record that a grant can depend on, computed in SQL.

Some grants hold only for some records: police see persons *of high-risk cases*, the
family-planning association sees *失独 and 伤残* families, the psychiatrist sees *registered
severe-mental-disorder patients* in the jurisdiction. A condition is a boolean SQL expression per
entity; the gate ANDs it with the relation of the grant in the row filter and selects it as a flag
column, so a row's decision key is (entity, relations, conditions) — still a handful of distinct
keys per request, however many rows.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from enum import StrEnum
from typing import TypeVar

from sqlalchemy import (
    ColumnElement,
    Select,
    SQLColumnExpression,
    and_,
    false,
    not_,
    or_,
    select,
    true,
)

from authz.entities import Entity
from authz.relations import RelationCompiler, born_after
from domain import models as m
from domain.cases import CaseStatus, RiskLevel
from domain.classification import FieldClass
from domain.families import SpecialFamilyType
from domain.persons import SENSITIVE_CATEGORIES
from domain.persons import PopulationCategory as Cat


class Condition(StrEnum):
    MINOR = "minor"
    UNDER_14 = "under_14"
    ADULT_PLAIN = "adult_plain"
    """An adult with no sensitive category."""
    HIGH_RISK = "high_risk"
    MEDIUM_RISK = "medium_risk"
    LOW_RISK = "low_risk"
    SMD = "smd"
    SHIDU = "shidu"
    SHANGCAN = "shangcan"
    LOW_INCOME = "low_income"
    EXTREME_POVERTY = "extreme_poverty"
    DISABLED = "disabled"
    DISABLED_FAMILY = "disabled_family"
    WOMAN_CHILD = "woman_child"
    VIOLENCE_VICTIM = "violence_victim"
    SHARE_BASIC = "share_basic"
    SHARE_IDENTITY = "share_identity"
    SHARE_ID_NUMBER = "share_id_number"
    SHARE_CONTACT = "share_contact"
    SHARE_CASE_ADMIN = "share_case_admin"
    SHARE_NARRATIVE = "share_narrative"
    SHARE_CLINICAL = "share_clinical"
    SHARE_FAMILY_CIRCUMSTANCE = "share_family_circumstance"


ANY = "*"

CATEGORY_CONDITIONS: dict[Condition, Cat] = {
    Condition.SMD: Cat.SEVERE_MENTAL_DISORDER,
    Condition.SHIDU: Cat.BEREAVED_ONLY_CHILD,
    Condition.SHANGCAN: Cat.ONLY_CHILD_DISABLED_FAMILY,
    Condition.LOW_INCOME: Cat.LOW_INCOME,
    Condition.EXTREME_POVERTY: Cat.EXTREME_POVERTY,
    Condition.DISABLED: Cat.DISABLED,
    Condition.DISABLED_FAMILY: Cat.DISABLED_FAMILY,
    Condition.WOMAN_CHILD: Cat.WOMAN_CHILD_IN_DIFFICULTY,
    Condition.VIOLENCE_VICTIM: Cat.VIOLENCE_VICTIM,
}

SHARE_CONDITIONS: dict[Condition, FieldClass] = {
    Condition.SHARE_BASIC: FieldClass.BASIC,
    Condition.SHARE_IDENTITY: FieldClass.IDENTITY,
    Condition.SHARE_ID_NUMBER: FieldClass.ID_NUMBER,
    Condition.SHARE_CONTACT: FieldClass.CONTACT,
    Condition.SHARE_CASE_ADMIN: FieldClass.CASE_ADMIN,
    Condition.SHARE_NARRATIVE: FieldClass.NARRATIVE,
    Condition.SHARE_CLINICAL: FieldClass.CLINICAL,
    Condition.SHARE_FAMILY_CIRCUMSTANCE: FieldClass.FAMILY_CIRCUMSTANCE,
}

Conditions = dict[Condition, ColumnElement[bool]]


T = TypeVar("T")


def _sel(column: SQLColumnExpression[T]) -> Select[T]:
    """An uncorrelated subquery of one column (see ``authz.relations._select``)."""
    return select(column).correlate(None)


class ConditionCompiler:
    """Condition predicates per entity, for one subject's request."""

    def __init__(self, today: date, relations: RelationCompiler) -> None:
        self.today = today
        self.relations = relations
        self._cache: dict[Entity, Conditions] = {}

    def conditions(self, entity: Entity) -> Conditions:
        if entity not in self._cache:
            builder = _BUILDERS.get(entity)
            self._cache[entity] = builder(self) if builder else {}
        return self._cache[entity]

    # -- persons -------------------------------------------------------------------------------

    def person_in_category(
        self, person_id: SQLColumnExpression[int], category: Cat
    ) -> ColumnElement[bool]:
        return person_id.in_(
            _sel(m.PersonCategory.person_id).where(m.PersonCategory.category == category)
        )

    def shared_cases(self, field_class: FieldClass) -> ColumnElement[bool] | None:
        """Cases with a *valid* referral to the viewer's unit that shares ``field_class``: the
        same predicate as the ``referral`` relation, plus the class (see ``referred_cases``)."""
        cases = self.relations.referred_cases(field_class.value)
        return None if cases is None else m.Case.id.in_(cases)


def _person(c: ConditionCompiler) -> Conditions:
    p = m.Person
    minor = born_after(c.today, 18)
    sensitive = p.id.in_(
        _sel(m.PersonCategory.person_id).where(m.PersonCategory.category.in_(SENSITIVE_CATEGORIES))
    )
    out: Conditions = {
        Condition.MINOR: minor,
        Condition.UNDER_14: born_after(c.today, 14),
        Condition.ADULT_PLAIN: and_(not_(minor), not_(sensitive)),
    }
    for condition, risk in (
        (Condition.HIGH_RISK, RiskLevel.HIGH),
        (Condition.MEDIUM_RISK, RiskLevel.MEDIUM),
        (Condition.LOW_RISK, RiskLevel.LOW),
    ):
        out[condition] = p.id.in_(
            _sel(m.Case.subject_id).where(
                m.Case.risk_level == risk, m.Case.status != CaseStatus.CLOSED
            )
        )
    for condition, category in CATEGORY_CONDITIONS.items():
        out[condition] = c.person_in_category(p.id, category)
    for condition, field_class in SHARE_CONDITIONS.items():
        cases = c.shared_cases(field_class)
        out[condition] = (
            false() if cases is None else p.id.in_(_sel(m.Case.subject_id).where(cases))
        )
    return out


def _case(c: ConditionCompiler) -> Conditions:
    k = m.Case
    out: Conditions = {
        Condition.HIGH_RISK: and_(k.risk_level == RiskLevel.HIGH, k.status != CaseStatus.CLOSED),
        Condition.MEDIUM_RISK: k.risk_level == RiskLevel.MEDIUM,
        Condition.LOW_RISK: k.risk_level == RiskLevel.LOW,
        Condition.MINOR: k.subject_id.in_(_sel(m.Person.id).where(born_after(c.today, 18))),
    }
    for condition, category in CATEGORY_CONDITIONS.items():
        out[condition] = c.person_in_category(k.subject_id, category)
    for condition, field_class in SHARE_CONDITIONS.items():
        cases = c.shared_cases(field_class)
        out[condition] = false() if cases is None else cases
    return out


def _family(_c: ConditionCompiler) -> Conditions:
    f = m.Family
    return {
        Condition.SHIDU: f.special_type == SpecialFamilyType.BEREAVED_ONLY_CHILD,
        Condition.SHANGCAN: f.special_type == SpecialFamilyType.ONLY_CHILD_DISABLED,
    }


def _via(
    column: SQLColumnExpression[int | None], parent_key: SQLColumnExpression[int], parent: Entity
) -> Callable[[ConditionCompiler], Conditions]:
    """A child record has its parent's conditions (an intervention of a high-risk case...)."""

    def build(c: ConditionCompiler) -> Conditions:
        return {
            cond: column.in_(_sel(parent_key).where(pred))
            for cond, pred in c.conditions(parent).items()
        }

    return build


def _intervention(c: ConditionCompiler) -> Conditions:
    by_case = _via(m.Intervention.case_id, m.Case.id, Entity.CASE)(c)
    by_family = _via(m.Intervention.family_id, m.Family.id, Entity.FAMILY)(c)
    return {
        cond: or_(by_case.get(cond, false()), by_family.get(cond, false()))
        for cond in by_case.keys() | by_family.keys()
    }


def _assessment(c: ConditionCompiler) -> Conditions:
    """As the relations: the case's conditions, or a screening result's student's."""
    by_case = _via(m.Assessment.case_id, m.Case.id, Entity.CASE)(c)
    by_person = _via(m.Assessment.person_id, m.Person.id, Entity.PERSON)(c)
    screening = m.Assessment.case_id.is_(None)
    return {
        cond: or_(by_case.get(cond, false()), and_(screening, by_person.get(cond, false())))
        for cond in by_case.keys() | by_person.keys()
    }


_BUILDERS: dict[Entity, Callable[[ConditionCompiler], Conditions]] = {
    Entity.PERSON: _person,
    Entity.CASE: _case,
    Entity.FAMILY: _family,
    Entity.FAMILY_MEMBER: _via(m.FamilyMember.family_id, m.Family.id, Entity.FAMILY),
    Entity.GUARDIANSHIP: _via(m.Guardianship.ward_id, m.Person.id, Entity.PERSON),
    Entity.CONSENT: _via(m.Consent.person_id, m.Person.id, Entity.PERSON),
    Entity.INTERVENTION: _intervention,
    Entity.ASSESSMENT: _assessment,
    Entity.REFERRAL: _via(m.Referral.case_id, m.Case.id, Entity.CASE),
    Entity.CASE_STATUS_CHANGE: _via(m.CaseStatusChange.case_id, m.Case.id, Entity.CASE),
    Entity.CASE_CO_UNIT: _via(m.CaseCoUnit.case_id, m.Case.id, Entity.CASE),
    Entity.CASE_ASSIGNMENT: _via(m.CaseAssignment.case_id, m.Case.id, Entity.CASE),
    Entity.FOLLOW_UP: _via(m.FollowUp.case_id, m.Case.id, Entity.CASE),
    Entity.ALERT: _via(m.Alert.case_id, m.Case.id, Entity.CASE),
}

__all__ = ["ANY", "Condition", "ConditionCompiler", "true"]
