"""Mutations on persons and families."""

from __future__ import annotations

import datetime

import strawberry
from strawberry import relay

from api.graphql import ids
from api.graphql import validators as v
from api.graphql.errors import UserError
from api.graphql.mutations.shell import mutate, run
from api.graphql.types.enums import (
    Gender,
    GuardianRelationship,
    MemberRelationship,
    PopulationCategory,
    SpecialFamilyType,
)
from api.graphql.types.families import FamilyMemberType, FamilyType
from api.graphql.types.persons import GuardianType, PersonType
from api.graphql.validators import collect
from api.services import erasure, intake
from authz.gate import Gate


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


@strawberry.type
class PersonMutations:
    @strawberry.mutation(
        description="Register a person in your jurisdiction (or a student of your school)."
    )
    async def create_person(self, info: strawberry.Info, input: CreatePersonInput) -> PersonPayload:
        async def action(gate: Gate) -> int:
            name, (id_number, birth), phone, address, residence, school = collect(
                lambda: v.text(input.name, 50, "name", required=True),
                lambda: v.id_number(input.id_number, input.birth_date),
                lambda: v.phone(input.phone),
                lambda: v.text(input.address, 200, "address"),
                lambda: ids.decode(input.residence_unit, "Unit", "residenceUnit")[1],
                lambda: (
                    None if input.school is None else ids.decode(input.school, "Unit", "school")[1]
                ),
            )
            return await intake.create_person(
                gate,
                name=name,
                gender=input.gender,
                residence_unit_id=residence,
                school_unit_id=school,
                birth_date=birth,
                id_number=id_number,
                phone=phone,
                address=address,
                categories=set(input.categories or ()),
            )

        return await mutate(info, action, PersonPayload, PersonType, "person")

    @strawberry.mutation(description="Change a person's name, contact data or categories.")
    async def update_person(
        self, info: strawberry.Info, id: relay.GlobalID, input: UpdatePersonInput
    ) -> PersonPayload:
        async def action(gate: Gate) -> int:
            number = ids.decode(id, "Person")[1]
            name, phone, address = collect(
                lambda: (
                    v.text(input.name, 50, "name", required=True)
                    if input.name is not None
                    else None
                ),
                lambda: v.phone(input.phone),
                lambda: v.text(input.address, 200, "address"),
            )
            categories = None if input.categories is None else set(input.categories)
            return await intake.update_person(
                gate,
                person_id=number,
                name=name,
                phone=phone,
                address=address,
                categories=categories,
            )

        return await mutate(info, action, PersonPayload, PersonType, "person")

    @strawberry.mutation(description="Register a family.")
    async def create_family(self, info: strawberry.Info, input: CreateFamilyInput) -> FamilyPayload:
        async def action(gate: Gate) -> int:
            residence, circumstances = collect(
                lambda: ids.decode(input.residence_unit, "Unit", "residenceUnit")[1],
                lambda: v.text(input.circumstances, 2000, "circumstances"),
            )
            return await intake.create_family(
                gate,
                residence_unit_id=residence,
                special_type=input.special_type,
                circumstances=circumstances,
            )

        return await mutate(info, action, FamilyPayload, FamilyType, "family")

    @strawberry.mutation(description="Add a person you can see to a family you may update.")
    async def add_family_member(
        self, info: strawberry.Info, input: AddFamilyMemberInput
    ) -> FamilyMemberPayload:
        async def action(gate: Gate) -> int:
            family_id, person_id = collect(
                lambda: ids.decode(input.family, "Family", "family")[1],
                lambda: ids.decode(input.person, "Person", "person")[1],
            )
            return await intake.add_family_member(
                gate, family_id=family_id, person_id=person_id, relationship=input.relationship
            )

        return await mutate(info, action, FamilyMemberPayload, FamilyMemberType, "member")


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
            (why,) = collect(lambda: v.text(reason, 90, "reason", required=True))
            return await erasure.erase_person(gate, person_id=number, reason=why or "")

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
            return await intake.add_guardian(
                gate, ward_id=ward_id, guardian_id=guardian_id, relationship=input.relationship
            )

        return await mutate(info, action, GuardianPayload, GuardianType, "guardianship")
