"""Relations between a viewer and a record, compiled to SQL predicates.

A relation is *why* a viewer may see a record (it is in their jurisdiction, they are on the case,
the case was referred to them...). Each one is an ``IN``/``EXISTS`` predicate the database
evaluates, so lists are filtered by the database and a page of 20 has 20 visible rows. The gate
selects the predicates as boolean columns too, which tells it per row *which* relations hold
without a second query; field decisions depend on that set.

An absent scope compiles to ``false()``: an empty jurisdiction means nothing, never everything.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime, timedelta
from enum import StrEnum
from typing import TypeVar

from sqlalchemy import (
    ColumnElement,
    CompoundSelect,
    Select,
    SQLColumnExpression,
    and_,
    false,
    literal,
    not_,
    or_,
    select,
    true,
    union,
)

from authz.entities import Entity
from authz.subject import Subject
from domain import models as m
from domain.cases import SourceChannel
from domain.consents import ConsentGiver
from domain.referrals import ReferralStatus


def born_after(today: date, age: int) -> ColumnElement[bool]:
    """SQL for ``domain.values.could_be_under``: the person may be under ``age`` this year, or
    their birth year is unknown (the overlays only tighten)."""
    year = m.Person.birth_year
    return or_(year.is_(None), year >= today.year - age)


class Relation(StrEnum):
    DIRECTORY = "directory"
    JURISDICTION = "jurisdiction"
    ASSIGNED = "assigned"
    SCHOOL = "school"
    REFERRAL = "referral"
    VOLUNTEER_LINK = "volunteer_link"
    CREATOR = "creator"
    EMERGENCY = "emergency"
    RECIPIENT = "recipient"
    """The unit a referral is offered to: it may see and answer the referral, not the case."""


CREATOR_WINDOW = timedelta(hours=24)
CLIENT_CREATOR_WINDOW = timedelta(days=7)


T = TypeVar("T")


def _select(column: SQLColumnExpression[T]) -> Select[T]:
    """An uncorrelated subquery of one column.

    Relation predicates are id lists, never correlated to the outer query: auto-correlation
    against a same-table outer query would silently change their meaning.
    """
    return select(column).correlate(None)


Predicates = dict[Relation, ColumnElement[bool]]
KeySet = Select[int] | CompoundSelect[int]
"""A subquery of record ids: the records of one entity that hold one relation."""
Keys = dict[Relation, KeySet | None]


class RelationCompiler:
    """Builds, once per request, the predicate of every relation for every entity."""

    def __init__(self, subject: Subject, now: datetime) -> None:
        self.subject = subject
        self.now = now
        self._cache: dict[Entity, Predicates] = {}
        self._keys: dict[Entity, Keys] = {}
        self._referred: dict[str | None, Select[int] | None] = {}
        """Built once per class per request: the share conditions of every entity ask for the
        same referral predicates, and building SQLAlchemy expressions is not free."""

    def predicates(self, entity: Entity) -> Predicates:
        if entity not in self._cache:
            self._cache[entity] = _BUILDERS[entity](self)
        return self._cache[entity]

    def keys(self, entity: Entity) -> Keys:
        """The relations of ``entity`` that are an id set (``id IN keys``), by relation: a child
        record's relation is then ``parent_id IN keys`` directly (see ``_via``)."""
        if entity not in self._keys:
            build = _KEY_SETS.get(entity)
            self._keys[entity] = build(self) if build is not None else {}
        return self._keys[entity]

    # -- building blocks -------------------------------------------------------------------

    def area_units(self) -> Select[int] | None:
        path = self.subject.jurisdiction_path
        if not path:
            return None
        return _select(m.Unit.id).where(m.Unit.path.startswith(path, autoescape=True))

    def team_cases(self) -> KeySet | None:
        """Cases the viewer's unit leads or co-works, and cases assigned to the viewer: a union
        of three index lookups, so its cost follows the team's caseload, not the number of cases
        in the district (an ``OR`` of the three filtered every case)."""
        s = self.subject
        if s.unit_id is None or s.staff_id is None:
            return None
        return union(
            _select(m.Case.id).where(m.Case.lead_unit_id == s.unit_id),
            _select(m.CaseCoUnit.case_id).where(m.CaseCoUnit.unit_id == s.unit_id),
            _select(m.CaseAssignment.case_id).where(
                m.CaseAssignment.staff_id == s.staff_id, m.CaseAssignment.ended_at.is_(None)
            ),
        )

    def referred_cases(self, field_class: str | None = None) -> Select[int] | None:
        """Cases with an accepted, unexpired referral to the viewer's unit that rests on a consent
        in force (withdrawal ends access at once) — a guardian's consent when the subject is
        under 14 (PIPL art. 31) — or on a recorded high-risk override.

        With ``field_class``: only referrals that share that class (and, for the classes only a
        consent may open, whose consent's own scope names it). The share conditions use this, so
        a class is readable only through a referral that is itself valid.
        """
        if field_class not in self._referred:
            self._referred[field_class] = self._referred_cases(field_class)
        return self._referred[field_class]

    def _referred_cases(self, field_class: str | None) -> Select[int] | None:
        if self.subject.unit_id is None:
            return None
        in_force = and_(
            m.Consent.withdrawn_at.is_(None),
            or_(m.Consent.valid_until.is_(None), m.Consent.valid_until > self.now),
        )
        consent_in_force = m.Referral.consent_id.in_(_select(m.Consent.id).where(in_force))
        guardian_consent = m.Referral.consent_id.in_(
            _select(m.Consent.id).where(in_force, m.Consent.given_by == ConsentGiver.GUARDIAN)
        )
        under_14 = m.Referral.case_id.in_(
            _select(m.Case.id).where(
                m.Case.subject_id.in_(_select(m.Person.id).where(born_after(self.now.date(), 14)))
            )
        )
        valid = [
            m.Referral.to_unit_id == self.subject.unit_id,
            m.Referral.status == ReferralStatus.ACCEPTED,
            or_(m.Referral.expires_at.is_(None), m.Referral.expires_at > self.now),
            or_(
                # A high-risk referral without consent rests on its stated reason. Erasing the
                # subject clears that (sealed) reason, and with it the referral's reach: the
                # erasure ends processing under it (documented in docs/encryption.md).
                m.Referral.override_reason.is_not(None),
                and_(consent_in_force, or_(not_(under_14), guardian_consent)),
            ),
        ]
        if field_class is not None:
            valid.append(_lists(m.Referral.shared_classes, field_class))
            if field_class in CONSENT_ONLY_CLASSES:
                valid.append(
                    m.Referral.consent_id.in_(
                        _select(m.Consent.id).where(in_force, _lists(m.Consent.scope, field_class))
                    )
                )
        return _select(m.Referral.case_id).where(*valid)

    def emergency_cases(self) -> Select[int] | None:
        if self.subject.staff_id is None:
            return None
        return _select(m.EmergencyGrant.case_id).where(
            m.EmergencyGrant.staff_id == self.subject.staff_id,
            m.EmergencyGrant.expires_at > self.now,
        )

    def linked_families(self) -> Select[int] | None:
        if self.subject.staff_id is None:
            return None
        return _select(m.VolunteerLink.family_id).where(
            m.VolunteerLink.staff_id == self.subject.staff_id, m.VolunteerLink.active.is_(True)
        )


CONSENT_ONLY_CLASSES = frozenset({"id_number", "clinical", "family_circumstance"})
"""Shared with a partner only when the consent's own scope names them, not the referral alone."""


def _lists(column: SQLColumnExpression[str], item: str) -> ColumnElement[bool]:
    """Exact membership in a comma-separated list (``narrative`` does not match ``narratives``)."""
    return (literal(",") + column + literal(",")).like(f"%,{item},%")


def _in(column: SQLColumnExpression[int | None], subquery: KeySet | None) -> ColumnElement[bool]:
    return false() if subquery is None else column.in_(subquery)


def _case_keys(c: RelationCompiler) -> Keys:
    return {
        Relation.ASSIGNED: c.team_cases(),
        Relation.REFERRAL: c.referred_cases(),
        Relation.EMERGENCY: c.emergency_cases(),
    }


def _case(c: RelationCompiler) -> Predicates:
    school = c.subject.unit_id
    keys = c.keys(Entity.CASE)
    return {
        Relation.JURISDICTION: _in(m.Case.area_unit_id, c.area_units()),
        Relation.ASSIGNED: _in(m.Case.id, keys[Relation.ASSIGNED]),
        Relation.REFERRAL: _in(m.Case.id, keys[Relation.REFERRAL]),
        Relation.EMERGENCY: _in(m.Case.id, keys[Relation.EMERGENCY]),
        Relation.SCHOOL: false()
        if school is None
        else m.Case.subject_id.in_(_select(m.Person.id).where(m.Person.school_unit_id == school)),
    }


def _subjects_of(cases: KeySet | None) -> Select[int] | None:
    return None if cases is None else _select(m.Case.subject_id).where(m.Case.id.in_(cases))


def _members_of(families: KeySet | None) -> Select[int] | None:
    if families is None:
        return None
    return _select(m.FamilyMember.person_id).where(m.FamilyMember.family_id.in_(families))


def _person_keys(c: RelationCompiler) -> Keys:
    return {
        Relation.ASSIGNED: _subjects_of(c.team_cases()),
        Relation.REFERRAL: _subjects_of(c.referred_cases()),
        Relation.VOLUNTEER_LINK: _members_of(c.linked_families()),
        Relation.EMERGENCY: _subjects_of(c.emergency_cases()),
    }


def _person(c: RelationCompiler) -> Predicates:
    school = c.subject.unit_id
    keys = c.keys(Entity.PERSON)
    return {
        Relation.JURISDICTION: _in(m.Person.residence_unit_id, c.area_units()),
        Relation.ASSIGNED: _in(m.Person.id, keys[Relation.ASSIGNED]),
        Relation.SCHOOL: false() if school is None else m.Person.school_unit_id == school,
        Relation.REFERRAL: _in(m.Person.id, keys[Relation.REFERRAL]),
        Relation.VOLUNTEER_LINK: _in(m.Person.id, keys[Relation.VOLUNTEER_LINK]),
        Relation.EMERGENCY: _in(m.Person.id, keys[Relation.EMERGENCY]),
        Relation.CREATOR: _created_recently(c, m.Person.created_by_staff_id, m.Person.created_at),
    }


def _family_keys(c: RelationCompiler) -> Keys:
    assigned = _subjects_of(c.team_cases())
    return {
        Relation.ASSIGNED: None
        if assigned is None
        else _select(m.FamilyMember.family_id).where(m.FamilyMember.person_id.in_(assigned)),
        Relation.VOLUNTEER_LINK: c.linked_families(),
    }


def _family(c: RelationCompiler) -> Predicates:
    keys = c.keys(Entity.FAMILY)
    return {
        Relation.JURISDICTION: _in(m.Family.residence_unit_id, c.area_units()),
        Relation.ASSIGNED: _in(m.Family.id, keys[Relation.ASSIGNED]),
        Relation.VOLUNTEER_LINK: _in(m.Family.id, keys[Relation.VOLUNTEER_LINK]),
    }


def _via(
    column: SQLColumnExpression[int | None], parent_key: SQLColumnExpression[int], parent: Entity
) -> Callable[[RelationCompiler], Predicates]:
    """Child records hold exactly the relations their parent row holds.

    Where the parent's relation is an id set, the child's is ``column IN ids`` rather than
    ``column IN (SELECT parent.id FROM parent WHERE parent.id IN ids)``: the same rows (the
    column is a foreign key to the parent), without a pass over every parent row that the
    planner could not avoid (a merge join over all cases, per statement, at 100k persons)."""

    def build(c: RelationCompiler) -> Predicates:
        keys = c.keys(parent)
        return {
            relation: _in(column, keys[relation])
            if relation in keys
            else column.in_(_select(parent_key).where(predicate))
            for relation, predicate in c.predicates(parent).items()
        }

    return build


def _alert(c: RelationCompiler) -> Predicates:
    s = c.subject
    team = c.team_cases()
    # Addressed to the viewer's unit: it owns the alert now, or the alert went to its whole
    # team at once (a high-risk alert reaches every unit of the joint team; ADR 0009).
    target = (
        false()
        if s.unit_id is None
        else or_(
            m.Alert.target_unit_id == s.unit_id,
            m.Alert.id.in_(
                _select(m.AlertTarget.alert_id).where(m.AlertTarget.unit_id == s.unit_id)
            ),
        )
    )
    # A school's screening signal stays with the school until someone opens a case: its risk
    # level alone would tell a jurisdiction role that a child answered the self-harm item.
    school_signal = and_(
        m.Alert.case_id.is_(None), m.Alert.channel == SourceChannel.SCHOOL_SCREENING
    )
    return {
        Relation.JURISDICTION: and_(_in(m.Alert.area_unit_id, c.area_units()), not_(school_signal)),
        Relation.ASSIGNED: or_(target, _in(m.Alert.case_id, team)),
        Relation.CREATOR: or_(
            _created_recently(c, m.Alert.created_by_staff_id, m.Alert.raised_at),
            _raised_by_client(c),
        ),
    }


def _created_recently(
    c: RelationCompiler, creator: SQLColumnExpression[int | None], at: SQLColumnExpression[datetime]
) -> ColumnElement[bool]:
    """Hotline intake: what you registered stays visible to you for a short window only."""
    if c.subject.staff_id is None:
        return false()
    return and_(creator == c.subject.staff_id, at > c.now - CREATOR_WINDOW)


def _raised_by_client(c: RelationCompiler) -> ColumnElement[bool]:
    """A partner system follows the alerts it raised (acknowledged? escalated?) for a week:
    long enough to outlast a low-risk alert's 72-hour deadline and its escalations."""
    if c.subject.client_pk is None:
        return false()
    return and_(
        m.Alert.created_by_client_id == c.subject.client_pk,
        m.Alert.raised_at > c.now - CLIENT_CREATOR_WINDOW,
    )


def _intervention(c: RelationCompiler) -> Predicates:
    """An intervention on a case has the case's relations; a family-level service (a condolence
    visit) has its family's."""
    by_case = _via(m.Intervention.case_id, m.Case.id, Entity.CASE)(c)
    by_family = _via(m.Intervention.family_id, m.Family.id, Entity.FAMILY)(c)
    return {
        r: or_(by_case.get(r, false()), by_family.get(r, false()))
        for r in by_case.keys() | by_family.keys()
    }


def _assessment(c: RelationCompiler) -> Predicates:
    """A case's assessment has the case's relations. A screening result (no case) belongs to the
    school that ran the campaign and to nobody else: not to the student's other relations (a
    referral elsewhere, a jurisdiction), and not to a school the student moves to."""
    out = dict(_via(m.Assessment.case_id, m.Case.id, Entity.CASE)(c))
    school = c.subject.unit_id
    ran_it = (
        false()
        if school is None
        else and_(
            m.Assessment.case_id.is_(None),
            m.Assessment.campaign_id.in_(
                _select(m.ScreeningCampaign.id).where(m.ScreeningCampaign.school_unit_id == school)
            ),
        )
    )
    out[Relation.SCHOOL] = or_(out.get(Relation.SCHOOL, false()), ran_it)
    return out


def _screening_campaign(c: RelationCompiler) -> Predicates:
    school = c.subject.unit_id
    return {
        Relation.SCHOOL: false()
        if school is None
        else m.ScreeningCampaign.school_unit_id == school,
        Relation.JURISDICTION: _in(m.ScreeningCampaign.school_unit_id, c.area_units()),
    }


def _emergency_grant(c: RelationCompiler) -> Predicates:
    staff = c.subject.staff_id
    return {
        Relation.DIRECTORY: true() if c.subject.authenticated else false(),
        Relation.CREATOR: false() if staff is None else m.EmergencyGrant.staff_id == staff,
    }


def _referral(c: RelationCompiler) -> Predicates:
    via_case = _via(m.Referral.case_id, m.Case.id, Entity.CASE)(c)
    unit = c.subject.unit_id
    via_case[Relation.RECIPIENT] = false() if unit is None else m.Referral.to_unit_id == unit
    return via_case


def _directory(c: RelationCompiler) -> Predicates:
    return {Relation.DIRECTORY: true() if c.subject.authenticated else false()}


_BUILDERS: dict[Entity, Callable[[RelationCompiler], Predicates]] = {
    Entity.CASE: _case,
    Entity.PERSON: _person,
    Entity.FAMILY: _family,
    Entity.ALERT: _alert,
    Entity.STAFF: _directory,
    Entity.UNIT: _directory,
    Entity.FAMILY_MEMBER: _via(m.FamilyMember.family_id, m.Family.id, Entity.FAMILY),
    Entity.VOLUNTEER_LINK: _via(m.VolunteerLink.family_id, m.Family.id, Entity.FAMILY),
    Entity.GUARDIANSHIP: _via(m.Guardianship.ward_id, m.Person.id, Entity.PERSON),
    Entity.CONSENT: _via(m.Consent.person_id, m.Person.id, Entity.PERSON),
    Entity.INTERVENTION: _intervention,
    Entity.EMERGENCY_GRANT: _emergency_grant,
    Entity.ACCESS_EVENT: _directory,
    Entity.PARTNER_CLIENT: _directory,
    Entity.ASSESSMENT: _assessment,
    Entity.SCREENING_CAMPAIGN: _screening_campaign,
    Entity.REFERRAL: _referral,
    Entity.CASE_STATUS_CHANGE: _via(m.CaseStatusChange.case_id, m.Case.id, Entity.CASE),
    Entity.CASE_CO_UNIT: _via(m.CaseCoUnit.case_id, m.Case.id, Entity.CASE),
    Entity.CASE_ASSIGNMENT: _via(m.CaseAssignment.case_id, m.Case.id, Entity.CASE),
    Entity.FOLLOW_UP: _via(m.FollowUp.case_id, m.Case.id, Entity.CASE),
}


_KEY_SETS: dict[Entity, Callable[[RelationCompiler], Keys]] = {
    Entity.CASE: _case_keys,
    Entity.PERSON: _person_keys,
    Entity.FAMILY: _family_keys,
}
