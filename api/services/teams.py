"""Who handles a case: its lead and co-handling units, by the tier rule of ``domain.routing``."""

from __future__ import annotations

from authz.actions import Action
from authz.entities import Entity
from authz.gate import Gate, Permit
from authz.relations import Relation
from domain import models as m
from domain.cases import RiskLevel
from domain.errors import DomainError, ErrorCode, NotFound
from domain.routing import Team, UnitNode, route


async def team_for(gate: Gate, area_unit_id: int, risk: RiskLevel) -> Team:
    """The team a case anchored at ``area_unit_id`` goes to. Units are not personal data: this
    reads only the organisation tree."""
    units = [UnitNode(u.id, u.kind, u.path, u.area_unit_id) for u in await gate.units()]
    area = next((u for u in units if u.id == area_unit_id), None)
    if area is None:
        raise NotFound(("subject",))
    return route(area, units, risk)


async def hand_over(gate: Gate, permit: Permit, case: m.Case, team: Team) -> list[int]:
    """Hand a case to a new team: lead and co-handling units replaced, active assignments ended
    (their access ends with them; each end is logged). Returns the staff ids whose assignment
    ended."""
    a = m.CaseAssignment
    ended = await gate.update_rows(
        permit,
        a,
        a.case_id == case.id,
        a.ended_at.is_(None),
        values={"ended_at": gate.now},
        returning=(a.staff_id,),
    )
    for assignment_id, _ in ended:
        gate.record_write(
            permit,
            Entity.CASE_ASSIGNMENT,
            assignment_id,
            ["ended_at"],
            "hand_over",
            person_id=case.subject_id,
        )
    await gate.delete_rows(permit, m.CaseCoUnit, m.CaseCoUnit.case_id == case.id)
    add_co_units(gate, permit, case, team)
    case.lead_unit_id = team.lead
    await gate.flush()
    return [staff_id for _, staff_id in ended]


def add_co_units(gate: Gate, permit: Permit, case: m.Case, team: Team) -> None:
    """The co-handling units' rows (logged as part of the case's own write, ``co_units``)."""
    for unit_id in team.co_units:
        row = m.CaseCoUnit(case_id=case.id, unit_id=unit_id)
        gate.add(permit, row)
        gate.wrote(permit, row, ["unit_id"], "co_unit", person_id=case.subject_id)


async def assign(gate: Gate, case_permit: Permit, case: m.Case, worker: m.Staff) -> int:
    """Put a staff member on a case; returns the assignment id.

    An assignment is itself an access grant (the ``assigned`` relation), so it is only made for
    someone the policy lets work this case once assigned — a role with an ``assigned`` grant on
    the case at its risk conditions. Otherwise the assigner could hand the record to any account
    (a volunteer, a partner, the police on a medium-risk case). Assigning a worker who is
    already on the case is refused rather than stacked."""
    conditions = await gate.conditions_of(m.Case, case.id)
    if not gate.decisions.would_permit(
        worker.roles, Entity.CASE, "read:case_admin", {Relation.ASSIGNED}, conditions
    ):
        raise DomainError(ErrorCode.INVALID, "该工作人员的角色不能承办此类个案", ("staff",))
    a = m.CaseAssignment
    active = await gate.rows_where(
        case_permit, a, a.case_id == case.id, a.staff_id == worker.id, a.ended_at.is_(None)
    )
    if active:
        raise DomainError(ErrorCode.DUPLICATE, "该工作人员已在本个案上", ("staff",))
    row = m.CaseAssignment(case_id=case.id, staff_id=worker.id, assigned_at=gate.now)
    return await gate.insert(
        case_permit, row, ["staff_id"], Action.ASSIGN.value, person_id=case.subject_id
    )
