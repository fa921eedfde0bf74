"""Casework on a case: opening it on the team its tier routes to, writing its text, moving it
through its states, re-routing it when the risk changes, assigning workers, and recording what
was done (interventions and the follow-ups they complete or schedule)."""

from __future__ import annotations

import datetime
from dataclasses import dataclass

from api.services.alerts import Deadlines, routing_alert
from api.services.notify import enqueue_for_alert
from api.services.teams import add_co_units, assign, hand_over, team_for
from authz.actions import Action
from authz.entities import Entity
from authz.gate import Forbidden, Gate, Order, Permit, Writable
from authz.relations import Relation
from domain import models as m
from domain.cases import CaseStatus, RiskLevel, SourceChannel
from domain.classification import field_classes, written_fields
from domain.errors import DomainError, ErrorCode, NotFound
from domain.interventions import InterventionKind
from domain.referrals import ReferralStatus


async def open_case(
    gate: Gate,
    *,
    subject_id: int,
    family_id: int | None,
    source_channel: SourceChannel,
    risk: RiskLevel,
    presenting_problem: str | None,
    deadlines: Deadlines,
    alert_id: int | None = None,
) -> OpenedCase:
    """Open a case on the team its risk tier routes it to (as when the risk changes). Opening
    it may not widen its opener's access: only someone who may already identify the person is
    assigned to work it. Opened from an alert, the alert is taken on (if it was not yet),
    linked to the case and closed."""
    me = gate.staff()
    subject = await gate.require(m.Person, subject_id, "subject")
    permit = gate.authorize(Entity.CASE, Action.CREATE, subject.relations, subject.conditions)
    if family_id is not None:
        await gate.require(m.Family, family_id, "family")
    source = None
    if alert_id is not None:
        source = await gate.for_write(m.Alert, alert_id)
        if source.row.person_id not in (None, subject_id):
            raise DomainError(ErrorCode.INVALID, "该预警涉及的不是此人", ("alert",))
    opener_works_it = gate.knows(subject)
    team = await team_for(gate, subject.row.residence_unit_id, risk)
    case = m.Case(
        subject_id=subject_id,
        family_id=family_id,
        area_unit_id=subject.row.residence_unit_id,
        source_channel=source_channel,
        risk_level=risk,
        status=CaseStatus.INTAKE,
        lead_unit_id=team.lead,
        opened_at=gate.now,
        created_by_staff_id=me.id,
    )
    gate.add(permit, case)
    await gate.seal(permit, case, {"presenting_problem": presenting_problem})
    add_co_units(gate, permit, case, team)
    if team.lead != me.unit_id:
        alert = routing_alert(gate, case, team.lead, deadlines, "新个案")
        fields = ["risk_level", "summary", "target_unit_id"]
        await gate.insert(permit, alert, fields, "route", person_id=subject_id)
        await enqueue_for_alert(gate, permit, alert)
    if opener_works_it:
        row = m.CaseAssignment(case_id=case.id, staff_id=me.id, assigned_at=gate.now)
        await gate.insert(permit, row, ["staff_id"], "assign", person_id=subject_id)
    co_units = list(team.co_units)
    gate.wrote(
        permit,
        case,
        [*written_fields(case), *(["co_units"] if co_units else [])],
        "create",
        person_id=subject_id,
        changes={"co_units": ("", ",".join(map(str, co_units)))} if co_units else None,
    )
    if source is not None:
        alert = source.row
        alert.open_case(case_id=case.id, staff_id=me.id, at=gate.now)
        fields = ["status", "acknowledged_at", "case_id", "resolution", "closed_at"]
        gate.wrote(source.permit, alert, fields, "case_opened", person_id=subject_id)
    return OpenedCase(case.id, team.lead, team.co_units)


@dataclass(frozen=True, slots=True)
class OpenedCase:
    """Where a new case went: the opener may no longer see it (a high-risk case goes to the
    police station's team), so the routing itself is the answer (no personal data)."""

    case_id: int
    lead_unit_id: int
    co_unit_ids: tuple[int, ...]


async def update_case(gate: Gate, *, case_id: int, text: dict[str, str | None]) -> int:
    """Write a case's presenting problem, support plan or diagnosis: each only by someone who
    may read its class (a social worker cannot set a diagnosis). ``text`` maps attribute →
    new value (None clears); sealed text is logged by name only."""
    target = await gate.for_write(m.Case, case_id)
    case = target.row
    classes = field_classes(m.Case)
    changed: dict[str, object] = {}
    for attr, value in text.items():
        if not gate.knows(target.visible, classes[attr]):
            raise Forbidden("无权填写您无权查看的内容", (_graph_name(attr),))
        if gate.plain(target.visible, attr) != value:
            changed[attr] = value
    if changed:
        await gate.seal(target.permit, case, changed)
    gate.wrote(target.permit, case, changed, "update", person_id=case.subject_id)
    return case.id


def _graph_name(attr: str) -> str:
    head, *rest = attr.split("_")
    return head + "".join(p.title() for p in rest)


async def change_status(
    gate: Gate,
    *,
    case_id: int,
    status: CaseStatus,
    reason: str | None,
    drop_open_follow_ups: bool,
) -> int:
    """Move a case along its state machine (``domain.cases``). Closing ends what was granted for
    it and needs its open follow-ups done, or dropped with a reason."""
    target = await gate.for_write(m.Case, case_id)
    case = target.row
    before = case.status
    if status == CaseStatus.CLOSED and before != CaseStatus.CLOSED:
        await end_case_access(gate, target)
    if status == CaseStatus.CLOSED:
        await _drop_open_follow_ups(gate, target, reason, drop_open_follow_ups)
    change = case.transition(status, reason=reason, at=gate.now)
    # Closing set the outcome in the clear, and the change its reason: seal them.
    await gate.seal_pending(target.permit, case)
    change.changed_by_staff_id = gate.subject.staff_id
    gate.add(target.permit, change)
    await gate.seal_pending(target.permit, change)
    gate.wrote(target.permit, change, ["to_status"], "transition", person_id=case.subject_id)
    gate.wrote(
        target.permit,
        case,
        ["status"],
        "transition",
        person_id=case.subject_id,
        changes={"status": (before, case.status)},
    )
    return case.id


async def _drop_open_follow_ups(
    gate: Gate, target: Writable[m.Case], reason: str | None, drop: bool
) -> None:
    f = m.FollowUp
    case = target.row
    found = await gate.children(f, f.case_id, [case.id], order=Order(f.due_at), limit=1000)
    still_open = [v for v in found.get(case.id, []) if v.row.done_at is None]
    if still_open and not drop:
        raise DomainError(
            ErrorCode.INVALID_TRANSITION,
            f"尚有{len(still_open)}项随访未完成：完成后再结案，或注明理由取消",
            ("dropOpenFollowUps",),
        )
    for follow_up in still_open:
        follow_up.row.drop(reason=reason or "结案", at=gate.now)
        await gate.seal_pending(target.permit, follow_up.row)
        gate.wrote(
            target.permit, follow_up.row, ["dropped_reason"], "drop", person_id=case.subject_id
        )


async def end_case_access(gate: Gate, target: Writable[m.Case]) -> None:
    """Closing a case ends what was granted for it: its referrals (offered or accepted) and any
    break-glass grant still running. Reopening it brings neither back; each end is logged
    (ADR 0005)."""
    permit, case = target.permit, target.row
    g = m.EmergencyGrant
    running = await gate.update_rows(
        permit, g, g.case_id == case.id, g.expires_at > gate.now, values={"expires_at": gate.now}
    )
    for (grant_id,) in running:
        gate.record_write(
            permit,
            Entity.EMERGENCY_GRANT,
            grant_id,
            ["expires_at"],
            "case_closed",
            person_id=target.person_id,
        )
    r = m.Referral
    live = r.status.in_([ReferralStatus.OFFERED, ReferralStatus.ACCEPTED])
    ended = await gate.update_rows(
        permit, r, r.case_id == case.id, live, values={"status": ReferralStatus.CLOSED}
    )
    for (referral_id,) in ended:
        gate.record_write(
            permit,
            Entity.REFERRAL,
            referral_id,
            ["status"],
            "case_closed",
            person_id=target.person_id,
        )


async def set_risk_level(gate: Gate, *, case_id: int, risk: RiskLevel, deadlines: Deadlines) -> int:
    """Change a case's risk level: re-routed to the tier's team, previous assignments end, and
    the new team is alerted with a deadline to acknowledge."""
    target = await gate.for_write(m.Case, case_id)
    case = target.row
    before = case.risk_level
    if before == risk:
        raise DomainError(ErrorCode.INVALID, "风险等级未变化", ("riskLevel",))
    case.risk_level = risk
    team = await team_for(gate, case.area_unit_id, risk)
    ended = await hand_over(gate, target.permit, case, team)
    alert = routing_alert(gate, case, team.lead, deadlines, "个案风险等级调整")
    await gate.insert(
        target.permit, alert, written_fields(alert), "route", person_id=case.subject_id
    )
    await enqueue_for_alert(gate, target.permit, alert)
    gate.wrote(
        target.permit,
        case,
        ["risk_level", "lead_unit_id", "co_units", "assignments"],
        "set_risk_level",
        person_id=case.subject_id,
        changes={
            "risk_level": (before, risk),
            "ended_assignments": (",".join(map(str, ended)), ""),
        },
    )
    return case.id


async def assign_worker(gate: Gate, *, case_id: int, staff_id: int) -> int:
    """Assign a staff member to an open case (an assignment is an access grant: see
    ``teams.assign``)."""
    target = await lead_permit(gate, case_id)
    worker = await gate.require(m.Staff, staff_id, "staff")
    if not worker.row.active:
        raise NotFound(("staff",))
    if target.row.status == CaseStatus.CLOSED:
        raise DomainError(ErrorCode.INVALID_TRANSITION, "个案已结案，不能分派工作人员", ("case",))
    await assign(gate, target.permit, target.row, worker.row)
    return case_id


async def lead_permit(gate: Gate, case_id: int) -> Writable[m.Case]:
    """A permit to run a case's team. Through the team (``assigned``), only the lead unit's
    staff may: the co-handling units work the case but do not staff it (the governance centre
    may for any case in its jurisdiction)."""
    target = await gate.for_write(m.Case, case_id, Action.ASSIGN)
    if (
        target.permit.relation is Relation.ASSIGNED
        and gate.subject.unit_id != target.row.lead_unit_id
    ):
        raise Forbidden("只有牵头单位可以安排本个案的工作人员", ("case",))
    return target


async def end_assignment(gate: Gate, *, case_id: int, staff_id: int) -> int:
    """Take a worker off a case (their access through it ends now); logged."""
    target = await lead_permit(gate, case_id)
    a = m.CaseAssignment
    ended = await gate.update_rows(
        target.permit,
        a,
        a.case_id == case_id,
        a.staff_id == staff_id,
        a.ended_at.is_(None),
        values={"ended_at": gate.now},
    )
    if not ended:
        raise NotFound(("staff",))
    for (assignment_id,) in ended:
        gate.record_write(
            target.permit,
            Entity.CASE_ASSIGNMENT,
            assignment_id,
            ["ended_at"],
            "end_assignment",
            person_id=target.person_id,
        )
    return case_id


async def record_intervention(
    gate: Gate,
    *,
    kind: InterventionKind,
    case_id: int | None,
    family_id: int | None,
    performed_at: datetime.datetime,
    notes: str | None,
    outcome: str | None,
    completes_follow_up: int | None,
    next_follow_up_at: datetime.datetime | None,
) -> int:
    """Record what was done on a case (or for a family): the write permitted by its kind
    (``create:<kind>``), completing the follow-up it carries out and scheduling the next. A
    partner client with ``op:record_intervention`` records for its agency (no staff member)."""
    unit_id = gate.subject.unit_id
    if unit_id is None:
        raise Forbidden()
    model: type[m.Case] | type[m.Family] = m.Case if case_id is not None else m.Family
    number = case_id if case_id is not None else family_id
    assert number is not None  # the caller validates "exactly one of case or family"
    anchor = await gate.require(model, number, "case" if case_id is not None else "family")
    permit = gate.authorize(
        Entity.INTERVENTION,
        Action.CREATE,
        anchor.relations,
        anchor.conditions,
        qualifier=kind.value,
    )
    if isinstance(anchor.row, m.Case) and anchor.row.status == CaseStatus.CLOSED:
        raise DomainError(ErrorCode.INVALID_TRANSITION, "个案已结案，不能记录服务", ("case",))
    intervention = m.Intervention(
        case_id=case_id,
        person_id=anchor.row.subject_id if isinstance(anchor.row, m.Case) else None,
        family_id=family_id,
        kind=kind,
        performed_at=performed_at,
        staff_id=gate.subject.staff_id,
        unit_id=unit_id,
    )
    gate.add(permit, intervention)
    await gate.seal(permit, intervention, {"notes": notes, "outcome": outcome})
    if completes_follow_up is not None:
        follow_up = await gate.for_write(m.FollowUp, completes_follow_up)
        if follow_up.row.case_id != intervention.case_id:
            raise NotFound(("completesFollowUp",))
        follow_up.row.complete(intervention_id=intervention.id, at=gate.now)
        gate.wrote(
            follow_up.permit,
            follow_up.row,
            ["done_at", "intervention_id"],
            "complete",
            person_id=anchor.person_id,
        )
    if next_follow_up_at is not None and intervention.case_id is not None:
        await _schedule_next(
            gate,
            anchor.relations,
            anchor.conditions,
            intervention,
            next_follow_up_at,
            anchor.person_id,
        )
    gate.wrote(
        permit, intervention, written_fields(intervention), "create", person_id=anchor.person_id
    )
    return intervention.id


async def _schedule_next(
    gate: Gate,
    relations: frozenset[Relation],
    conditions: frozenset[str],
    done: m.Intervention,
    due_at: datetime.datetime,
    person_id: int | None,
) -> None:
    permit: Permit = gate.authorize(Entity.FOLLOW_UP, Action.CREATE, relations, conditions)
    assert done.case_id is not None
    follow_up = m.FollowUp(
        case_id=done.case_id,
        person_id=done.person_id,
        kind=done.kind,
        due_at=due_at,
        assigned_staff_id=gate.subject.staff_id,
        created_at=gate.now,
    )
    await gate.insert(permit, follow_up, ["due_at", "kind"], person_id=person_id)
