"""Mutations on persons and families."""

from __future__ import annotations

import datetime

import strawberry
from strawberry import relay

from api.graphql import ids
from api.graphql.errors import UserError
from api.graphql.mutations.base import collect, reload, run
from api.graphql.types.enums import (
    Gender,
    GuardianRelationship,
    MemberRelationship,
    PopulationCategory,
    SpecialFamilyType,
)
from api.graphql.types.families import FamilyMemberType, FamilyType
from api.graphql.types.persons import GuardianType, PersonType
from authz.entities import Entity
from authz.gate import Forbidden, Gate, Order
from domain import models as m
from domain.errors import DomainError, ErrorCode
from domain.values import MobilePhone, ResidentId, bounded_text


@strawberry.input
class CreatePersonInput:
    name: str
    gender: Gender
    residence_unit: relay.GlobalID
    birth_date: datetime.date | None = None
    id_number: str | None = None
    phone: str | None = None
    address: str | None = None
    school: relay.GlobalID | None = None
    categories: list[PopulationCategory] | None = None


@strawberry.input
class UpdatePersonInput:
    name: str | None = None
    phone: str | None = None
    address: str | None = None
    categories: list[PopulationCategory] | None = None


@strawberry.type
class PersonPayload:
    person: PersonType | None
    errors: list[UserError]


@strawberry.input
class CreateFamilyInput:
    residence_unit: relay.GlobalID
    special_type: SpecialFamilyType | None = None
    circumstances: str | None = None


@strawberry.type
class FamilyPayload:
    family: FamilyType | None
    errors: list[UserError]


@strawberry.input
class AddFamilyMemberInput:
    family: relay.GlobalID
    person: relay.GlobalID
    relationship: MemberRelationship


@strawberry.type
class FamilyMemberPayload:
    member: FamilyMemberType | None
    errors: list[UserError]


def _id_number(
    raw: str | None, birth: datetime.date | None
) -> tuple[str | None, datetime.date | None]:
    if raw is None or not raw.strip():
        return None, birth
    try:
        rid = ResidentId.parse(raw)
    except DomainError as e:
        raise e.at("idNumber") from None
    if birth is not None and birth != rid.birth_date:
        raise DomainError(ErrorCode.INVALID, "出生日期与身份证号码不一致", ("birthDate",))
    return rid.value, rid.birth_date


def _phone(raw: str | None) -> str | None:
    if raw is None or not raw.strip():
        return None
    try:
        return MobilePhone.parse(raw).value
    except DomainError as e:
        raise e.at("phone") from None


def _text(raw: str | None, limit: int, field: str, required: bool = False) -> str | None:
    if raw is None:
        if required:
            raise DomainError(ErrorCode.REQUIRED, "不能为空", (field,))
        return None
    try:
        return bounded_text(raw, limit=limit, required=required) or None
    except DomainError as e:
        raise e.at(field) from None


@strawberry.type
class PersonMutations:
    @strawberry.mutation(
        description="Register a person in your jurisdiction (or a student of your school)."
    )
    async def create_person(self, info: strawberry.Info, input: CreatePersonInput) -> PersonPayload:
        async def action(gate: Gate) -> int:
            name, (id_number, birth), phone, address, residence, school = collect(
                lambda: _text(input.name, 50, "name", required=True),
                lambda: _id_number(input.id_number, input.birth_date),
                lambda: _phone(input.phone),
                lambda: _text(input.address, 200, "address"),
                lambda: ids.decode(input.residence_unit, "Unit", "residenceUnit")[1],
                lambda: (
                    None if input.school is None else ids.decode(input.school, "Unit", "school")[1]
                ),
            )
            relations = await gate.new_record_relations(
                area_unit_id=residence, school_unit_id=school
            )
            gate.authorize(Entity.PERSON, "create", relations)
            person = m.Person(
                gender=input.gender,
                birth_year=None if birth is None else birth.year,
                residence_unit_id=residence,
                school_unit_id=school,
                created_at=gate.now,
                created_by_staff_id=gate.subject.staff_id,
            )
            person.set_categories(set(input.categories or ()))
            gate.add(person)
            await gate.seal(
                person,
                {
                    "name": name,
                    "id_number": id_number,
                    "phone": phone,
                    "address": address,
                    "birth_date": birth,
                },
            )
            gate.record_write(
                Entity.PERSON, person.id, _written(person), "create", person_id=person.id
            )
            return person.id

        person_id, errors = await run(info, action)
        return PersonPayload(
            person=await reload(info, PersonType, person_id, "person"), errors=errors
        )

    @strawberry.mutation(description="Change a person's name, contact data or categories.")
    async def update_person(
        self, info: strawberry.Info, id: relay.GlobalID, input: UpdatePersonInput
    ) -> PersonPayload:
        async def action(gate: Gate) -> int:
            number = ids.decode(id, "Person")[1]
            name, phone, address = collect(
                lambda: (
                    _text(input.name, 50, "name", required=True) if input.name is not None else None
                ),
                lambda: _phone(input.phone),
                lambda: _text(input.address, 200, "address"),
            )
            visible = await gate.for_write(m.Person, number, "update")
            person: m.Person = visible.row
            changes: dict[str, tuple[object, object]] = {}
            changed: dict[str, str | None] = {}
            for field, value in (("name", name), ("phone", phone), ("address", address)):
                if value is not None and gate.plain(visible, field) != value:
                    changed[field] = value
            if changed:
                # Sealed fields are logged by name only: a keyed hash of a phone number in the
                # append-only log would outlive the person's erasure.
                await gate.seal(person, changed)
            if input.categories is not None:
                before = {r.category for r in person.category_rows}
                after = gate.merge_categories(visible, before, set(input.categories))
                if after != before:
                    person.set_categories(after)
                    changes["categories"] = (",".join(sorted(before)), ",".join(sorted(after)))
            gate.record_write(
                Entity.PERSON,
                person.id,
                [*changed, *changes],
                "update",
                person_id=person.id,
                changes=changes or None,
            )
            return person.id

        person_id, errors = await run(info, action)
        return PersonPayload(
            person=await reload(info, PersonType, person_id, "person"), errors=errors
        )

    @strawberry.mutation(description="Register a family.")
    async def create_family(self, info: strawberry.Info, input: CreateFamilyInput) -> FamilyPayload:
        async def action(gate: Gate) -> int:
            residence, circumstances = collect(
                lambda: ids.decode(input.residence_unit, "Unit", "residenceUnit")[1],
                lambda: _text(input.circumstances, 2000, "circumstances"),
            )
            gate.authorize(
                Entity.FAMILY, "create", await gate.new_record_relations(area_unit_id=residence)
            )
            family = m.Family(
                residence_unit_id=residence,
                special_type=input.special_type,
                circumstances=circumstances,
            )
            await gate.insert(family, _written(family), "create")
            return family.id

        family_id, errors = await run(info, action)
        return FamilyPayload(
            family=await reload(info, FamilyType, family_id, "family"), errors=errors
        )

    @strawberry.mutation(description="Add a person you can see to a family you may update.")
    async def add_family_member(
        self, info: strawberry.Info, input: AddFamilyMemberInput
    ) -> FamilyMemberPayload:
        async def action(gate: Gate) -> int:
            family_id, person_id = collect(
                lambda: ids.decode(input.family, "Family", "family")[1],
                lambda: ids.decode(input.person, "Person", "person")[1],
            )
            await gate.for_write(m.Family, family_id, "update")
            person = await gate.for_write(m.Person, person_id, "update")
            if not gate.knows(person):
                # Membership opens the person to whoever may see the family (a linked
                # volunteer...): only someone who may identify the person can add them.
                raise Forbidden("无权将无法识别身份的人员加入家庭", ("person",))
            member = m.FamilyMember(
                family_id=family_id, person_id=person_id, relationship=input.relationship
            )
            await gate.insert(member, ["relationship"], "create", person_id=person_id)
            return member.id

        member_id, errors = await run(info, action)
        return FamilyMemberPayload(
            member=await reload(info, FamilyMemberType, member_id, "member"), errors=errors
        )


@strawberry.type
class ErasePayload:
    erased: bool
    errors: list[UserError]


@strawberry.input
class AddGuardianInput:
    ward: relay.GlobalID
    guardian: relay.GlobalID
    relationship: GuardianRelationship


@strawberry.type
class GuardianPayload:
    guardianship: GuardianType | None
    errors: list[UserError]


@strawberry.type
class ErasureMutations:
    @strawberry.mutation(
        description="Erase a person (PIPL art. 47): their data key is destroyed, so their name, "
        "ID number, phone and address become unreadable for good and no lookup finds them; "
        "that they and their cases existed stays, for statistics. Administrators only; the "
        "reason is recorded in the access log."
    )
    async def erase_person(
        self, info: strawberry.Info, id: relay.GlobalID, reason: str
    ) -> ErasePayload:
        async def action(gate: Gate) -> int:
            number = ids.decode(id, "Person")[1]
            # The reason goes to the access log: a request reference, not a story (90 chars).
            (why,) = collect(lambda: _text(reason, 90, "reason", required=True))
            await gate.erase_person(number, why or "")
            return number

        erased, errors = await run(info, action)
        return ErasePayload(erased=erased is not None and not errors, errors=errors)


@strawberry.type
class GuardianMutations:
    @strawberry.mutation(
        description="Record who a minor's guardian (监护人) is: their consent stands for the "
        "child's under 14."
    )
    async def add_guardian(self, info: strawberry.Info, input: AddGuardianInput) -> GuardianPayload:
        async def action(gate: Gate) -> int:
            ward_id, guardian_id = collect(
                lambda: ids.decode(input.ward, "Person", "ward")[1],
                lambda: ids.decode(input.guardian, "Person", "guardian")[1],
            )
            if ward_id == guardian_id:
                raise DomainError(ErrorCode.INVALID, "不能是本人的监护人", ("guardian",))
            ward = await gate.require(m.Person, ward_id, "ward")
            gate.authorize(Entity.GUARDIANSHIP, "create", ward.relations, ward.conditions)
            guardian = await gate.require(m.Person, guardian_id, "guardian")
            if not (gate.knows(ward) and gate.knows(guardian)):
                # A guardian's consent opens the child's record: only someone who may identify
                # both may say who that is.
                raise Forbidden("无权登记无法识别身份的人员的监护关系", ("guardian",))
            links = await gate.children(
                m.Guardianship,
                m.Guardianship.ward_id,
                [ward_id],
                order=Order(m.Guardianship.id),
                limit=20,
            )
            if guardian_id in {v.row.guardian_id for v in links.get(ward_id, [])}:
                raise DomainError(ErrorCode.DUPLICATE, "已登记该监护关系", ("guardian",))
            link = m.Guardianship(
                ward_id=ward_id, guardian_id=guardian_id, relationship=input.relationship
            )
            return await gate.insert(link, ["guardian_id", "relationship"], person_id=ward_id)

        link_id, errors = await run(info, action)
        return GuardianPayload(
            guardianship=await reload(info, GuardianType, link_id, "guardianship"), errors=errors
        )


def _written(row: object) -> list[str]:
    """Names of the classified attributes that hold a value (never the values)."""
    from domain.classification import field_classes

    return [n for n in field_classes(type(row)) if not n.startswith("_") and _has(row, n)]


def _has(row: object, name: str) -> bool:
    try:
        value = getattr(row, name)
    except AttributeError:
        return False
    return value not in (None, [], "")
