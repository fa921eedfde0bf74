"""Overlays: rules that only ever tighten what the policy file grants (PRODUCT.md §4).

They are code, not policy lines, because they depend on the whole relation set of a row ("unless
assigned") and on values ("only the categories the role owns"), which a per-line allow cannot
express. Each is a small function of data the gate already has; none queries the database.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import ColumnElement, not_, or_

from authz.conditions import Condition
from authz.entities import Entity
from authz.relations import Relation
from domain.classification import FieldClass
from domain.persons import PopulationCategory as Cat
from domain.staff import Role

MINOR_EXEMPT_RELATIONS = frozenset({Relation.ASSIGNED, Relation.EMERGENCY})
"""On the case or under an emergency grant. A valid referral (consent in force, a guardian's under
14) lifts the overlay too, but only for the classes readable through the referral itself: the
gate adds those (ADR 0005), so a referral never unlocks what another relation grants."""
MINOR_ENTITIES = frozenset({Entity.PERSON, Entity.GUARDIANSHIP, Entity.CONSENT})

CATEGORY_OWNERS: dict[Cat, frozenset[Role]] = {
    Cat.BEREAVED_ONLY_CHILD: frozenset({Role.FAMILY_PLANNING}),
    Cat.ONLY_CHILD_DISABLED_FAMILY: frozenset({Role.FAMILY_PLANNING}),
    Cat.SEVERE_MENTAL_DISORDER: frozenset({Role.PSYCHIATRIST, Role.POLICE}),
    Cat.COMMUNITY_CORRECTIONS: frozenset(),  # the justice bureau; no such account yet
    Cat.RELEASED_PRISONER: frozenset(),
    Cat.DRUG_REHABILITATION: frozenset(),
    Cat.PETITIONER: frozenset({Role.GOVERNANCE}),
    Cat.VIOLENCE_VICTIM: frozenset({Role.WOMENS_FEDERATION}),
}
"""Sensitive categories are visible only to the role that owns them."""

OVERLAY_CONDITIONS: dict[Entity, frozenset[Condition]] = {
    Entity.PERSON: frozenset({Condition.MINOR, Condition.HIGH_RISK}),
    Entity.GUARDIANSHIP: frozenset({Condition.MINOR}),
    Entity.CONSENT: frozenset({Condition.MINOR}),
}
"""Conditions the overlays read, selected for every row of these entities."""


FAMILY_TYPE_OWNERS = frozenset({Role.FAMILY_PLANNING})
"""A family's special type (失独 / 伤残) is the family-planning association's to see."""


def class_allowed(roles: frozenset[Role], entity: Entity, field_class: FieldClass) -> bool:
    """Tightening that depends on the entity and class only (not on the row)."""
    if entity is Entity.FAMILY and field_class is FieldClass.SENSITIVE_CATEGORY:
        return bool(roles & FAMILY_TYPE_OWNERS)
    return True


def tighten(
    roles: frozenset[Role],
    entity: Entity,
    relations: frozenset[Relation],
    conditions: frozenset[str],
    classes: frozenset[FieldClass],
) -> frozenset[FieldClass]:
    """Minors show only basic data, unless the viewer is on the case, under an emergency grant,
    or the student's own school counsellor. Sensitive categories of families show only to their
    owner. (What a consented referral shares is added back by the gate.)"""
    classes = frozenset(c for c in classes if class_allowed(roles, entity, c))
    if entity in MINOR_ENTITIES and Condition.MINOR in conditions:
        own_counsellor = Relation.SCHOOL in relations and Role.SCHOOL_COUNSELLOR in roles
        if not (relations & MINOR_EXEMPT_RELATIONS) and not own_counsellor:
            return classes & {FieldClass.BASIC}
    return classes


def minor_overlay_sql(
    roles: frozenset[Role],
    entity: Entity,
    field_class: FieldClass,
    relations: dict[Relation, ColumnElement[bool]],
    conditions: dict[Condition, ColumnElement[bool]],
) -> ColumnElement[bool] | None:
    """The minors overlay of ``tighten`` as a SQL predicate (None when it cannot apply), so a
    filter on a class can be restricted to the rows where that class is readable."""
    if entity not in MINOR_ENTITIES or field_class is FieldClass.BASIC:
        return None
    minor = conditions.get(Condition.MINOR)
    if minor is None:
        return None
    exempt = [relations[r] for r in MINOR_EXEMPT_RELATIONS if r in relations]
    if Role.SCHOOL_COUNSELLOR in roles and Relation.SCHOOL in relations:
        exempt.append(relations[Relation.SCHOOL])
    return or_(not_(minor), *exempt)


def visible_categories(
    roles: frozenset[Role], conditions: frozenset[str], categories: Iterable[Cat]
) -> tuple[list[Cat], bool]:
    """The sensitive categories the viewer's roles own, and whether any were withheld.

    Police own "severe mental disorder" only on high-risk records.
    """
    shown: list[Cat] = []
    withheld = False
    for category in categories:
        owners = CATEGORY_OWNERS.get(category, frozenset())
        if category is Cat.SEVERE_MENTAL_DISORDER and Condition.HIGH_RISK not in conditions:
            owners = owners - {Role.POLICE}
        if owners & roles:
            shown.append(category)
        else:
            withheld = True
    return shown, withheld
