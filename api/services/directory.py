"""The organisation directory (administrators): units and staff accounts."""

from __future__ import annotations

from authz.actions import Action
from authz.entities import Entity
from authz.gate import Gate
from authz.relations import Relation
from domain import models as m
from domain.errors import DomainError, ErrorCode, NotFound
from domain.staff import Role
from domain.units import UnitKind

DIRECTORY = frozenset({Relation.DIRECTORY})


async def create_unit(
    gate: Gate, *, name: str, kind: UnitKind, parent_id: int, area_id: int | None
) -> int:
    permit = gate.authorize(Entity.UNIT, Action.CREATE, DIRECTORY)
    parent = await gate.unit(parent_id)
    if parent is None:
        raise NotFound(("parent",))
    if area_id is not None and await gate.unit(area_id) is None:
        raise NotFound(("area",))
    unit = m.Unit(name=name, kind=kind, parent_id=parent_id, area_unit_id=area_id)
    gate.add(permit, unit)
    await gate.flush()
    unit.place_under(parent)
    gate.wrote(permit, unit, ["name", "kind", "parent_id"], "create")
    return unit.id


async def create_staff(
    gate: Gate, *, username: str, display_name: str, unit_id: int, roles: set[Role]
) -> int:
    permit = gate.authorize(Entity.STAFF, Action.CREATE, DIRECTORY)
    if await gate.unit(unit_id) is None:
        raise NotFound(("unit",))
    staff = m.Staff(
        username=username,
        display_name=display_name,
        unit_id=unit_id,
        role_rows=[m.StaffRole(role=r) for r in sorted(roles)],
    )
    return await gate.insert(permit, staff, ["username", "display_name", "unit_id"], "create")


async def set_staff_active(gate: Gate, *, staff_id: int, active: bool) -> int:
    target = await gate.for_write(m.Staff, staff_id)
    if staff_id == gate.subject.staff_id and not active:
        raise DomainError(ErrorCode.INVALID, "不能停用自己的账号", ("id",))
    target.row.active = active
    gate.wrote(target.permit, target.row, ["active"], "set_active")
    return staff_id
