"""Mutations on the organisation directory (administrators)."""

from __future__ import annotations

import re

import strawberry
from strawberry import relay

from api.graphql import ids
from api.graphql import validators as v
from api.graphql.errors import UserError
from api.graphql.mutations.shell import mutate
from api.graphql.types.enums import Role, UnitKind
from api.graphql.types.units import StaffType, UnitType
from api.graphql.validators import collect
from api.services import directory
from authz.gate import Gate
from authz.relations import Relation
from domain.errors import DomainError, ErrorCode

USERNAME = re.compile(r"^[a-z][a-z0-9._-]{2,63}$")
DIRECTORY = frozenset({Relation.DIRECTORY})


@strawberry.input
class CreateUnitInput:
    name: str
    kind: UnitKind
    parent: relay.GlobalID
    area: relay.GlobalID | None = strawberry.field(
        default=None, description="For agencies: the area whose subtree they serve."
    )


@strawberry.type
class UnitPayload:
    unit: UnitType | None
    errors: list[UserError]


@strawberry.input
class CreateStaffInput:
    username: str
    display_name: str
    unit: relay.GlobalID
    roles: list[Role]


@strawberry.type
class StaffPayload:
    staff: StaffType | None
    errors: list[UserError]


def _username(raw: str) -> str:
    if not USERNAME.match(raw):
        raise DomainError(
            ErrorCode.INVALID, "用户名须为3到64位小写字母、数字、点、下划线或连字符", ("username",)
        )
    return raw


def _roles(roles: list[Role]) -> set[Role]:
    if not roles:
        raise DomainError(ErrorCode.REQUIRED, "至少指定一个角色", ("roles",))
    chosen = set(roles)
    # Separation of duties: administrators and auditors hold no other role (COMPLIANCE A11).
    if chosen & {Role.ADMIN, Role.AUDITOR} and len(chosen) > 1:
        raise DomainError(ErrorCode.INVALID, "管理员、审计员角色不能与其他角色兼任", ("roles",))
    return chosen


@strawberry.type
class UnitMutations:
    @strawberry.mutation(description="Add a unit under an existing one (administrators).")
    async def create_unit(self, info: strawberry.Info, input: CreateUnitInput) -> UnitPayload:
        async def action(gate: Gate) -> int:
            name, parent_id, area_id = collect(
                lambda: v.text(input.name, 100, "name", required=True),
                lambda: ids.decode(input.parent, "Unit", "parent")[1],
                lambda: None if input.area is None else ids.decode(input.area, "Unit", "area")[1],
            )
            return await directory.create_unit(
                gate, name=name, kind=input.kind, parent_id=parent_id, area_id=area_id
            )

        return await mutate(info, action, UnitPayload, UnitType, "unit")

    @strawberry.mutation(description="Create a staff account in a unit (administrators).")
    async def create_staff(self, info: strawberry.Info, input: CreateStaffInput) -> StaffPayload:
        async def action(gate: Gate) -> int:
            username, display, unit_id, roles = collect(
                lambda: _username(input.username),
                lambda: v.text(input.display_name, 100, "displayName", required=True),
                lambda: ids.decode(input.unit, "Unit", "unit")[1],
                lambda: _roles(input.roles),
            )
            return await directory.create_staff(
                gate, username=username, display_name=display, unit_id=unit_id, roles=roles
            )

        return await mutate(info, action, StaffPayload, StaffType, "staff")

    @strawberry.mutation(description="Disable or re-enable a staff account (administrators).")
    async def set_staff_active(
        self, info: strawberry.Info, id: relay.GlobalID, active: bool
    ) -> StaffPayload:
        async def action(gate: Gate) -> int:
            number = ids.decode(id, "Staff")[1]
            return await directory.set_staff_active(gate, staff_id=number, active=active)

        return await mutate(info, action, StaffPayload, StaffType, "staff")
