"""Families and their members."""

import datetime
from typing import Any, ClassVar

import strawberry
from strawberry import relay

from api.graphql.types.base import REDACTED_DOC, Gated, load_children, load_one
from api.graphql.types.enums import MemberRelationship, SpecialFamilyType
from api.graphql.types.persons import PersonType
from api.graphql.types.units import UnitType
from authz.gate import Order, Visible
from domain import models as m


@strawberry.type(name="Family", description="A family (家庭).")
class FamilyType(relay.Node, Gated):
    model: ClassVar[type[m.Base]] = m.Family
    links: ClassVar[dict[str, str]] = {"residence_unit": "residence_unit_id"}

    id: relay.NodeID[int]
    special_type: SpecialFamilyType | None = strawberry.field(
        default=None, description="Sensitive: 失独 / 伤残 family."
    )
    circumstances: str | None = strawberry.field(
        default=None, description="Family circumstances (sensitive)."
    )
    created_at: datetime.datetime | None = None
    redacted_fields: list[str] = strawberry.field(default_factory=list, description=REDACTED_DOC)
    _visible: strawberry.Private[Visible[Any] | None] = None

    @strawberry.field
    async def residence_unit(self, info: strawberry.Info) -> UnitType | None:
        return await load_one(info, UnitType, self.link("residence_unit"))

    @strawberry.field(description="Members you may see.")
    async def members(self, info: strawberry.Info, first: int = 20) -> list["FamilyMemberType"]:
        order = Order(m.FamilyMember.id)
        return await load_children(
            info, FamilyMemberType, m.FamilyMember.family_id, self.id, order, first
        )


@strawberry.type(name="FamilyMember", description="A person's membership of a family.")
class FamilyMemberType(relay.Node, Gated):
    model: ClassVar[type[m.Base]] = m.FamilyMember

    id: relay.NodeID[int]
    relationship: MemberRelationship | None = None
    redacted_fields: list[str] = strawberry.field(default_factory=list, description=REDACTED_DOC)
    _visible: strawberry.Private[Visible[Any] | None] = None

    @strawberry.field
    async def family(self, info: strawberry.Info) -> FamilyType | None:
        assert self._visible is not None
        return await load_one(info, FamilyType, self._visible.row.family_id)

    @strawberry.field
    async def person(self, info: strawberry.Info) -> PersonType | None:
        assert self._visible is not None
        return await load_one(info, PersonType, self._visible.row.person_id)
