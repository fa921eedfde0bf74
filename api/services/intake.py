"""Intake: finding a person without browsing (exact lookups), and registering persons, families
and guardians."""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from typing import Any

from authz.actions import Action
from authz.entities import Entity
from authz.gate import Forbidden, Gate, Order, Visible
from authz.relations import Relation
from domain import models as m
from domain.classification import written_fields
from domain.errors import DomainError, ErrorCode
from domain.families import MemberRelationship, SpecialFamilyType
from domain.persons import Gender, GuardianRelationship, PopulationCategory
from domain.values import age_band_of, mask_name

SHOWN = ("age_band", "gender", "masked_name", "residence_unit_id")
"""All an exact lookup may show of a person outside the subject's relations."""


@dataclass(frozen=True, slots=True)
class LookupHit:
    person_id: int
    visible: Visible[Any] | None
    """Set when the person is inside the subject's relations (then reveal as usual)."""
    basic: dict[str, Any]
    """Masked name, gender, age band, residence: all a search may show."""


@dataclass(frozen=True, slots=True)
class IntakePerson:
    """Who a call is about, as the caller describes them (validated)."""

    name: str
    gender: Gender
    birth_date: datetime.date | None
    id_number: str | None
    phone: str | None


async def lookup_persons(
    gate: Gate, *, id_number: str | None, phone: str | None, limit: int = 10
) -> list[LookupHit]:
    """Search is not browsing: an exact lookup (to avoid duplicates at intake) may confirm that
    a person exists outside the subject's relations and show basic fields only. Each hit is
    logged as a search."""
    permit = gate.authorize(Entity.PERSON, Action.SEARCH, {Relation.DIRECTORY})
    if id_number is None and phone is None:
        return []
    p = m.Person
    match = (
        p.id_number_index == gate.blind("id_number", id_number)
        if id_number is not None
        else p.phone_index == gate.blind("phone", phone or "")
    )
    by = "id_number" if id_number is not None else "phone"
    found = await gate.search(
        permit,
        p,
        match,
        opens=("name", "birth_date"),
        shown=SHOWN,
        reason=f"lookup_by_{by}",
        limit=limit,
    )
    hits = []
    for hit in found:
        row = hit.row
        basic = {
            "masked_name": mask_name(hit.opened["name"]),
            "gender": row.gender,
            "age_band": age_band_of(hit.opened["birth_date"]),
            "residence_unit_id": row.residence_unit_id,
        }
        hits.append(LookupHit(hit.id, hit.visible, basic))
    return hits


async def intake_person(gate: Gate, who: IntakePerson, area_id: int) -> tuple[int | None, int]:
    """Match the caller's description by ID number, then phone (exact lookups, logged as
    searches); create the person when nothing matches; flag when several do (never merge)."""
    for value, kind in ((who.id_number, "id_number"), (who.phone, "phone")):
        if value is None:
            continue
        hits = await lookup_persons(
            gate,
            id_number=value if kind == "id_number" else None,
            phone=value if kind == "phone" else None,
        )
        if len(hits) == 1:
            return hits[0].person_id, 0
        if len(hits) > 1:
            return None, len(hits)
    relations = await gate.new_record_relations(area_unit_id=area_id)
    permit = gate.authorize(Entity.PERSON, Action.CREATE, relations)
    born = who.birth_date
    person = m.Person(
        gender=who.gender,
        birth_year=None if born is None else born.year,
        residence_unit_id=area_id,
        created_at=gate.now,
        created_by_staff_id=gate.subject.staff_id,
    )
    person.set_categories(set())
    sealed = {"name": who.name, "id_number": who.id_number, "phone": who.phone, "birth_date": born}
    person_id = await gate.insert(permit, person, None, "intake", sealed=sealed)
    return person_id, 0


async def create_person(
    gate: Gate,
    *,
    name: str,
    gender: Gender,
    residence_unit_id: int,
    school_unit_id: int | None,
    birth_date: datetime.date | None,
    id_number: str | None,
    phone: str | None,
    address: str | None,
    categories: set[PopulationCategory],
) -> int:
    """Register a person in the subject's jurisdiction (or a student of their school)."""
    relations = await gate.new_record_relations(
        area_unit_id=residence_unit_id, school_unit_id=school_unit_id
    )
    permit = gate.authorize(Entity.PERSON, Action.CREATE, relations)
    person = m.Person(
        gender=gender,
        birth_year=None if birth_date is None else birth_date.year,
        residence_unit_id=residence_unit_id,
        school_unit_id=school_unit_id,
        created_at=gate.now,
        created_by_staff_id=gate.subject.staff_id,
    )
    person.set_categories(categories)
    sealed = {
        "name": name,
        "id_number": id_number,
        "phone": phone,
        "address": address,
        "birth_date": birth_date,
    }
    return await gate.insert(permit, person, None, "create", sealed=sealed)


async def update_person(
    gate: Gate,
    *,
    person_id: int,
    name: str | None,
    phone: str | None,
    address: str | None,
    categories: set[PopulationCategory] | None,
) -> int:
    """Change a person's name, contact data or categories. Sealed fields are logged by name
    only: a keyed hash of a phone number in the append-only log would outlive erasure."""
    target = await gate.for_write(m.Person, person_id)
    person = target.row
    changes: dict[str, tuple[object, object]] = {}
    changed: dict[str, object] = {}
    for field, value in (("name", name), ("phone", phone), ("address", address)):
        if value is not None and gate.plain(target.visible, field) != value:
            changed[field] = value
    if changed:
        await gate.seal(target.permit, person, changed)
    if categories is not None:
        before = {r.category for r in person.category_rows}
        after = gate.decisions.merge_categories(target.visible, before, categories)
        if after != before:
            person.set_categories(after)
            changes["categories"] = (",".join(sorted(before)), ",".join(sorted(after)))
    gate.wrote(
        target.permit,
        person,
        [*changed, *changes],
        "update",
        person_id=person.id,
        changes=changes or None,
    )
    return person.id


async def create_family(
    gate: Gate,
    *,
    residence_unit_id: int,
    special_type: SpecialFamilyType | None,
    circumstances: str | None,
) -> int:
    relations = await gate.new_record_relations(area_unit_id=residence_unit_id)
    permit = gate.authorize(Entity.FAMILY, Action.CREATE, relations)
    family = m.Family(
        residence_unit_id=residence_unit_id, special_type=special_type, circumstances=circumstances
    )
    return await gate.insert(permit, family, written_fields(family), "create")


async def add_family_member(
    gate: Gate, *, family_id: int, person_id: int, relationship: MemberRelationship
) -> int:
    """Membership opens the person to whoever may see the family (a linked volunteer...): only
    someone who may identify the person can add them."""
    family = await gate.for_write(m.Family, family_id)
    person = await gate.for_write(m.Person, person_id)
    if not gate.knows(person.visible):
        raise Forbidden("无权将无法识别身份的人员加入家庭", ("person",))
    member = m.FamilyMember(family_id=family_id, person_id=person_id, relationship=relationship)
    return await gate.insert(family.permit, member, ["relationship"], person_id=person_id)


async def add_guardian(
    gate: Gate, *, ward_id: int, guardian_id: int, relationship: GuardianRelationship
) -> int:
    """A guardian's consent opens the child's record: only someone who may identify both may
    say who that is."""
    if ward_id == guardian_id:
        raise DomainError(ErrorCode.INVALID, "不能是本人的监护人", ("guardian",))
    ward = await gate.require(m.Person, ward_id, "ward")
    permit = gate.authorize(Entity.GUARDIANSHIP, Action.CREATE, ward.relations, ward.conditions)
    guardian = await gate.require(m.Person, guardian_id, "guardian")
    if not (gate.knows(ward) and gate.knows(guardian)):
        raise Forbidden("无权登记无法识别身份的人员的监护关系", ("guardian",))
    if guardian_id in await guardians_of(gate, ward_id):
        raise DomainError(ErrorCode.DUPLICATE, "已登记该监护关系", ("guardian",))
    link = m.Guardianship(ward_id=ward_id, guardian_id=guardian_id, relationship=relationship)
    return await gate.insert(permit, link, ["guardian_id", "relationship"], person_id=ward_id)


async def guardians_of(gate: Gate, ward_id: int) -> set[int]:
    g = m.Guardianship
    links = await gate.children(g, g.ward_id, [ward_id], order=Order(g.id), limit=20)
    return {v.row.guardian_id for v in links.get(ward_id, [])}
