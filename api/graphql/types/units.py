"""Units and staff: the organisation directory."""

from typing import Annotated, Any, ClassVar

import strawberry
from strawberry import relay

from api.graphql.types.base import REDACTED_DOC, Gated, load_children, load_one
from api.graphql.types.enums import Role, UnitKind
from authz.gate import Order, Visible
from domain.base import Base
from domain.staff import Staff
from domain.units import Unit


@strawberry.type(name="Unit", description="An organisation unit (单位) in the district tree.")
class UnitType(relay.Node, Gated):
    model: ClassVar[type[Base]] = Unit
    links: ClassVar[dict[str, str]] = {"parent": "parent_id", "area": "area_unit_id"}

    id: relay.NodeID[int]
    name: str | None = None
    kind: UnitKind | None = None
    redacted_fields: list[str] = strawberry.field(default_factory=list, description=REDACTED_DOC)
    _visible: strawberry.Private[Visible[Any] | None] = None

    @strawberry.field(description="The unit above this one.")
    async def parent(
        self, info: strawberry.Info
    ) -> Annotated["UnitType", strawberry.lazy("api.graphql.types.units")] | None:
        return await load_one(info, UnitType, self.link("parent"))

    @strawberry.field(description="For agencies: the area whose subtree they serve.")
    async def area(
        self, info: strawberry.Info
    ) -> Annotated["UnitType", strawberry.lazy("api.graphql.types.units")] | None:
        return await load_one(info, UnitType, self.link("area"))

    @strawberry.field(
        description="The unit's staff directory (name, roles, active), for whoever assigns work: "
        "as the directory policy allows."
    )
    async def staff(
        self, info: strawberry.Info, first: int = 50
    ) -> list[Annotated["StaffType", strawberry.lazy("api.graphql.types.units")]]:
        return await load_children(info, StaffType, Staff.unit_id, self.id, Order(Staff.id), first)


@strawberry.type(name="Staff", description="A staff account (工作人员).")
class StaffType(relay.Node, Gated):
    model: ClassVar[type[Base]] = Staff
    links: ClassVar[dict[str, str]] = {"unit": "unit_id"}

    id: relay.NodeID[int]
    username: str | None = None
    display_name: str | None = None
    active: bool | None = None
    roles: list[Role] | None = None
    redacted_fields: list[str] = strawberry.field(default_factory=list, description=REDACTED_DOC)
    _visible: strawberry.Private[Visible[Any] | None] = None

    @strawberry.field
    async def unit(self, info: strawberry.Info) -> UnitType | None:
        return await load_one(info, UnitType, self.link("unit"))


@strawberry.type(description="The signed-in account and what it is.")
class Viewer:
    staff: StaffType | None
    roles: list[Role]
    unit: UnitType | None
