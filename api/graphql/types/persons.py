"""Persons and their guardians."""

import datetime
from typing import TYPE_CHECKING, Annotated, Any, ClassVar

import strawberry
from strawberry import relay

from api.graphql.types.base import REDACTED_DOC, Gated, load_children, load_one
from api.graphql.types.enums import Gender, GuardianRelationship, PopulationCategory
from api.graphql.types.units import UnitType
from authz.gate import Order, Visible
from domain import models as m

if TYPE_CHECKING:  # resolved by strawberry.lazy at run time (the modules import this one)
    from api.graphql.types.cases import CaseType
    from api.graphql.types.families import FamilyMemberType
    from api.graphql.types.referrals import ConsentType

CasesType = Annotated["CaseType", strawberry.lazy("api.graphql.types.cases")]
FamilyMemberLazy = Annotated["FamilyMemberType", strawberry.lazy("api.graphql.types.families")]
ConsentLazy = Annotated["ConsentType", strawberry.lazy("api.graphql.types.referrals")]


@strawberry.type(
    name="Person",
    description="A person (人员). Fields you may not see are null and listed in redactedFields.",
)
class PersonType(relay.Node, Gated):
    model: ClassVar[type[m.Base]] = m.Person
    links: ClassVar[dict[str, str]] = {
        "residence_unit": "residence_unit_id",
        "school": "school_unit_id",
    }

    id: relay.NodeID[int]
    masked_name: str | None = strawberry.field(default=None, description="Basic: 张* form.")
    gender: Gender | None = None
    age_band: str | None = strawberry.field(default=None, description="Basic: e.g. 14-17.")
    is_minor: bool | None = None
    categories: list[PopulationCategory] | None = strawberry.field(
        default=None, description="Non-sensitive population categories."
    )
    name: str | None = strawberry.field(default=None, description="Identity: full name.")
    birth_date: datetime.date | None = None
    masked_id_number: str | None = strawberry.field(
        default=None,
        description="ID-number class: region and last four digits (110105********1234), for "
        "default display; the full number is asked for deliberately.",
    )
    id_number: str | None = strawberry.field(default=None, description="Resident ID number.")
    phone: str | None = None
    address: str | None = None
    sensitive_categories: list[PopulationCategory] | None = strawberry.field(
        default=None, description="Sensitive categories (失独, severe mental disorder, ...)."
    )
    created_at: datetime.datetime | None = None
    redacted_fields: list[str] = strawberry.field(default_factory=list, description=REDACTED_DOC)
    _visible: strawberry.Private[Visible[Any] | None] = None

    @strawberry.field(description="Residence community.")
    async def residence_unit(self, info: strawberry.Info) -> UnitType | None:
        return await load_one(info, UnitType, self.link("residence_unit"))

    @strawberry.field(description="School, for students.")
    async def school(self, info: strawberry.Info) -> UnitType | None:
        return await load_one(info, UnitType, self.link("school"))

    @strawberry.field(description="Cases where this person is the subject, newest first.")
    async def cases(self, info: strawberry.Info, first: int = 20) -> list[CasesType]:
        from api.graphql.types.cases import CaseType

        order = Order(m.Case.opened_at, descending=True)
        return await load_children(info, CaseType, m.Case.subject_id, self.id, order, first)

    @strawberry.field(description="Family memberships of this person.")
    async def families(self, info: strawberry.Info, first: int = 20) -> list[FamilyMemberLazy]:
        from api.graphql.types.families import FamilyMemberType

        order = Order(m.FamilyMember.id)
        return await load_children(
            info, FamilyMemberType, m.FamilyMember.person_id, self.id, order, first
        )

    @strawberry.field(description="Guardians of this person (for minors).")
    async def guardians(self, info: strawberry.Info, first: int = 20) -> list["GuardianType"]:
        order = Order(m.Guardianship.id)
        return await load_children(
            info, GuardianType, m.Guardianship.ward_id, self.id, order, first
        )

    @strawberry.field(description="Consents given by or for this person.")
    async def consents(self, info: strawberry.Info, first: int = 20) -> list[ConsentLazy]:
        from api.graphql.types.referrals import ConsentType

        order = Order(m.Consent.given_at, descending=True)
        return await load_children(info, ConsentType, m.Consent.person_id, self.id, order, first)


@strawberry.type(name="Guardian", description="A guardian of a person (监护人).")
class GuardianType(relay.Node, Gated):
    model: ClassVar[type[m.Base]] = m.Guardianship
    links: ClassVar[dict[str, str]] = {"person": "guardian_id"}

    id: relay.NodeID[int]
    relationship: GuardianRelationship | None = None
    redacted_fields: list[str] = strawberry.field(default_factory=list, description=REDACTED_DOC)
    _visible: strawberry.Private[Visible[Any] | None] = None

    @strawberry.field(description="The guardian, if you may see them.")
    async def person(self, info: strawberry.Info) -> PersonType | None:
        return await load_one(info, PersonType, self.link("person"))
