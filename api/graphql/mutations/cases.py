"""Mutations on cases, interventions and alerts."""

from __future__ import annotations

import datetime

import strawberry
from strawberry import relay

from api.graphql import ids
from api.graphql.errors import UserError
from api.graphql.mutations.base import collect, reload, run
from api.graphql.mutations.persons import _id_number, _phone, _text, _written
from api.graphql.types.alerts import AlertType
from api.graphql.types.base import ctx
from api.graphql.types.cases import CaseType
from api.graphql.types.enums import (
    CaseStatus,
    Gender,
    InterventionKind,
    RiskLevel,
    SourceChannel,
)
from api.graphql.types.interventions import InterventionType
from authz.entities import Entity
from authz.gate import Forbidden, Gate, Order
from authz.relations import Relation
from domain import models as m
from domain.alerts import AlertStatus
from domain.classification import field_classes
from domain.errors import DomainError, ErrorCode, NotFound


@strawberry.input
class OpenCaseInput:
    subject: relay.GlobalID
    source_channel: SourceChannel
    risk_level: RiskLevel
    presenting_problem: str | None = None
    family: relay.GlobalID | None = None


@strawberry.input(description="Only the fields given change; an empty string clears one.")
class UpdateCaseInput:
    presenting_problem: str | None = None
    support_plan: str | None = strawberry.field(
        default=None, description="The personalised support plan (个性化帮扶方案)."
    )
    diagnosis: str | None = strawberry.field(default=None, description="Clinical.")


CASE_TEXT_FIELDS: tuple[tuple[str, str, int], ...] = (
    ("presenting_problem", "presentingProblem", 5000),
    ("support_plan", "supportPlan", 5000),
    ("diagnosis", "diagnosis", 500),
)


@strawberry.type
class CasePayload:
    case: CaseType | None
    errors: list[UserError]


@strawberry.input(description="Give exactly one of case (casework) or family (a family service).")
class RecordInterventionInput:
    kind: InterventionKind
    case: relay.GlobalID | None = None
    family: relay.GlobalID | None = None
    performed_at: datetime.datetime | None = None
    notes: str | None = None
    outcome: str | None = None
    completes_follow_up: relay.GlobalID | None = strawberry.field(
        default=None, description="The follow-up this intervention carries out."
    )
    next_follow_up_at: datetime.datetime | None = strawberry.field(
        default=None, description="Schedule the next follow-up of the same kind."
    )


@strawberry.type
class InterventionPayload:
    intervention: InterventionType | None
    errors: list[UserError]


@strawberry.input
@strawberry.input
class IntakePersonInput:
    """Who the call is about, as the caller describes them."""

    name: str
    gender: Gender = Gender.UNKNOWN
    birth_date: datetime.date | None = None
    id_number: str | None = None
    phone: str | None = None


@strawberry.input
class RaiseAlertInput:
    channel: SourceChannel
    risk_level: RiskLevel
    area_unit: relay.GlobalID
    summary: str | None = None
    person: relay.GlobalID | None = None
    new_person: IntakePersonInput | None = strawberry.field(
        default=None,
        description="Intake: matched to an existing person by ID number, then phone; created "
        "if none matches; flagged (possibleDuplicates) if several do — never merged.",
    )


@strawberry.type
class AlertPayload:
    alert: AlertType | None
    errors: list[UserError]


async def _intake_person(
    gate: Gate, who: IntakePersonInput, area_id: int
) -> tuple[int | None, int]:
    """Match the caller's description by ID number, then phone (exact lookups, logged as
    searches); create the person when nothing matches; flag when several do."""
    name, (number, born), phone = collect(
        lambda: _text(who.name, 50, "newPerson", required=True),
        lambda: _id_number(who.id_number, who.birth_date),
        lambda: _phone(who.phone),
    )
    for field_value, kind in ((number, "id_number"), (phone, "phone")):
        if field_value is None:
            continue
        hits = await gate.lookup_persons(**{"id_number": None, "phone": None, kind: field_value})
        if len(hits) == 1:
            return hits[0].person_id, 0
        if len(hits) > 1:
            return None, len(hits)
    gate.authorize(Entity.PERSON, "create", await gate.new_record_relations(area_unit_id=area_id))
    person = m.Person(
        gender=who.gender,
        birth_year=None if born is None else born.year,
        residence_unit_id=area_id,
        created_at=gate.now,
        created_by_staff_id=gate.subject.staff_id,
    )
    person.set_categories(set())
    gate.add(person)
    await gate.seal(person, {"name": name, "id_number": number, "phone": phone, "birth_date": born})
    gate.record_write(Entity.PERSON, person.id, _written(person), "intake", person_id=person.id)
    return person.id, 0


def _routing_alert(
    case: m.Case,
    lead: int,
    gate: Gate,
    deadlines: dict[RiskLevel, datetime.timedelta],
    why: str,
) -> m.Alert:
    """The alert every routing raises to the case's new lead team, with its tier's deadline."""
    risk = RiskLevel(case.risk_level)
    return m.Alert(
        person_id=case.subject_id,
        case_id=case.id,
        channel=case.source_channel,
        risk_level=risk,
        summary=f"{why}（{risk.value}风险），请接手",
        status=AlertStatus.OPEN,
        area_unit_id=case.area_unit_id,
        target_unit_id=lead,
        raised_at=gate.now,
        routed_at=gate.now,
        ack_deadline=gate.now + deadlines[risk],
        created_by_staff_id=gate.subject.staff_id,
    )


def _intervention_target(input: RecordInterventionInput) -> tuple[type, int, str]:
    if (input.case is None) == (input.family is None):
        raise DomainError(ErrorCode.INVALID, "须且只能指定个案或家庭之一", ("case",))
    if input.case is not None:
        return m.Case, ids.decode(input.case, "Case", "case")[1], "case"
    assert input.family is not None
    return m.Family, ids.decode(input.family, "Family", "family")[1], "family"


def _when_future(value: datetime.datetime, now: datetime.datetime, field: str) -> datetime.datetime:
    if value.tzinfo is None:
        raise DomainError(ErrorCode.INVALID, "时间须带时区", (field,))
    if value <= now:
        raise DomainError(ErrorCode.INVALID, "随访时间须在将来", (field,))
    return value


def _when(value: datetime.datetime | None, now: datetime.datetime, field: str) -> datetime.datetime:
    if value is None:
        return now
    if value.tzinfo is None:
        raise DomainError(ErrorCode.INVALID, "时间须带时区", (field,))
    if value > now + datetime.timedelta(minutes=5):
        raise DomainError(ErrorCode.INVALID, "时间不能晚于现在", (field,))
    return value


@strawberry.type
class CaseMutations:
    @strawberry.mutation(
        description="Open a case for a person you can see; you are assigned to it."
    )
    async def open_case(self, info: strawberry.Info, input: OpenCaseInput) -> CasePayload:
        async def action(gate: Gate) -> int:
            subject_id, family_id, problem = collect(
                lambda: ids.decode(input.subject, "Person", "subject")[1],
                lambda: (
                    None
                    if input.family is None
                    else ids.decode(input.family, "Family", "family")[1]
                ),
                lambda: _text(input.presenting_problem, 5000, "presentingProblem"),
            )
            subject = await gate.require(m.Person, subject_id, "subject")
            gate.authorize(Entity.CASE, "create", subject.relations, subject.conditions)
            if family_id is not None:
                await gate.require(m.Family, family_id, "family")
            staff_id = gate.subject.staff_id
            assert staff_id is not None and gate.subject.unit_id is not None
            # The case goes to the team its risk tier routes it to (as when the risk changes).
            # Opening it may not widen its opener's access: only someone who may already
            # identify the person is assigned to work it.
            opener_works_it = gate.knows(subject)
            lead, co_units = await gate.route_team(
                subject.row.residence_unit_id, input.risk_level.value
            )
            case = m.Case(
                subject_id=subject_id,
                family_id=family_id,
                area_unit_id=subject.row.residence_unit_id,
                source_channel=input.source_channel,
                risk_level=input.risk_level,
                status=CaseStatus.INTAKE,
                lead_unit_id=lead,
                opened_at=gate.now,
                created_by_staff_id=staff_id,
            )
            gate.add(case)
            await gate.seal(case, {"presenting_problem": problem})
            for unit_id in co_units:
                gate.add(m.CaseCoUnit(case_id=case.id, unit_id=unit_id))
            if lead != gate.subject.unit_id:
                await gate.insert(
                    _routing_alert(case, lead, gate, ctx(info).settings.ack_deadlines, "新个案"),
                    ["risk_level", "summary", "target_unit_id"],
                    "route",
                    person_id=subject_id,
                )
            if opener_works_it:
                await gate.insert(
                    m.CaseAssignment(case_id=case.id, staff_id=staff_id, assigned_at=gate.now),
                    ["staff_id"],
                    "assign",
                    person_id=subject_id,
                )
            gate.record_write(
                Entity.CASE,
                case.id,
                [*_written(case), *(["co_units"] if co_units else [])],
                "create",
                person_id=subject_id,
                changes={"co_units": ("", ",".join(map(str, co_units)))} if co_units else None,
            )
            return case.id

        case_id, errors = await run(info, action)
        return CasePayload(case=await reload(info, CaseType, case_id, "case"), errors=errors)

    @strawberry.mutation(
        description="Write a case's presenting problem, support plan or diagnosis. You may write "
        "only what you may read (a social worker cannot set a diagnosis)."
    )
    async def update_case(
        self, info: strawberry.Info, id: relay.GlobalID, input: UpdateCaseInput
    ) -> CasePayload:
        async def action(gate: Gate) -> int:
            number = ids.decode(id, "Case")[1]
            given = [
                (attr, graph, limit, getattr(input, attr))
                for attr, graph, limit in CASE_TEXT_FIELDS
                if getattr(input, attr) is not None
            ]
            values = collect(
                *(
                    (lambda v=value, n=graph, lim=limit: _text(v, lim, n) or None)
                    for _, graph, limit, value in given
                )
            )
            visible = await gate.for_write(m.Case, number, "update")
            case: m.Case = visible.row
            classes = field_classes(m.Case)
            changed: dict[str, str | None] = {}
            for (attr, graph, _, _), value in zip(given, values, strict=True):
                if not gate.knows(visible, classes[attr]):
                    raise Forbidden("无权填写您无权查看的内容", (graph,))
                if gate.plain(visible, attr) != value:
                    changed[attr] = value
            if changed:
                await gate.seal(case, changed)
            # Sealed text is logged by name only (see updatePerson).
            gate.record_write(Entity.CASE, case.id, changed, "update", person_id=case.subject_id)
            return case.id

        case_id, errors = await run(info, action)
        return CasePayload(case=await reload(info, CaseType, case_id, "case"), errors=errors)

    @strawberry.mutation(
        description="Move a case along its status machine; closing needs a reason."
    )
    async def change_case_status(
        self,
        info: strawberry.Info,
        id: relay.GlobalID,
        status: CaseStatus,
        reason: str | None = None,
        drop_open_follow_ups: bool = False,
    ) -> CasePayload:
        async def action(gate: Gate) -> int:
            number = ids.decode(id, "Case")[1]
            (reason_text,) = collect(lambda: _text(reason, 2000, "reason"))
            visible = await gate.for_write(m.Case, number, "update")
            case: m.Case = visible.row
            before = case.status
            if status == CaseStatus.CLOSED and before != CaseStatus.CLOSED:
                await gate.end_case_access(visible)
            if status == CaseStatus.CLOSED:
                still_open = [
                    v
                    for v in (
                        await gate.children(
                            m.FollowUp,
                            m.FollowUp.case_id,
                            [number],
                            order=Order(m.FollowUp.due_at),
                            limit=1000,
                        )
                    ).get(number, [])
                    if v.row.done_at is None
                ]
                if still_open and not drop_open_follow_ups:
                    raise DomainError(
                        ErrorCode.INVALID_TRANSITION,
                        f"尚有{len(still_open)}项随访未完成：完成后再结案，或注明理由取消",
                        ("dropOpenFollowUps",),
                    )
                for follow_up in still_open:
                    follow_up.row.drop(reason=reason_text or "结案", at=gate.now)
                    await gate.seal_pending(follow_up.row)
                    gate.record_write(
                        Entity.FOLLOW_UP,
                        follow_up.row.id,
                        ["dropped_reason"],
                        "drop",
                        person_id=case.subject_id,
                    )
            change = case.transition(status, reason=reason_text, at=gate.now)
            # Closing set the outcome in the clear, and the change its reason: seal them.
            await gate.seal_pending(case)
            change.changed_by_staff_id = gate.subject.staff_id
            gate.add(change)
            await gate.seal_pending(change)
            gate.record_write(
                Entity.CASE,
                case.id,
                ["status"],
                "transition",
                person_id=case.subject_id,
                changes={"status": (before, case.status)},
            )
            return case.id

        case_id, errors = await run(info, action)
        return CasePayload(case=await reload(info, CaseType, case_id, "case"), errors=errors)

    @strawberry.mutation(
        description="Change a case's risk level, with a reason. The case is re-routed to the "
        "tier's team (high: police station + health centre + community; medium: governance "
        "centre; low: community grid), previous assignments end, and the new team is alerted "
        "with a deadline to acknowledge."
    )
    async def set_case_risk_level(
        self, info: strawberry.Info, id: relay.GlobalID, risk_level: RiskLevel, reason: str
    ) -> CasePayload:
        async def action(gate: Gate) -> int:
            number = ids.decode(id, "Case")[1]
            collect(lambda: _text(reason, 2000, "reason", required=True))
            visible = await gate.for_write(m.Case, number, "update")
            case: m.Case = visible.row
            before = case.risk_level
            if before == risk_level:
                raise DomainError(ErrorCode.INVALID, "风险等级未变化", ("riskLevel",))
            case.risk_level = risk_level
            lead, co_units = await gate.route_team(case.area_unit_id, risk_level.value)
            ended = await gate.set_case_team(visible, lead, co_units)
            alert = _routing_alert(
                case, lead, gate, ctx(info).settings.ack_deadlines, "个案风险等级调整"
            )
            await gate.insert(alert, _written(alert), "route", person_id=case.subject_id)
            gate.record_write(
                Entity.CASE,
                case.id,
                ["risk_level", "lead_unit_id", "co_units", "assignments"],
                "set_risk_level",
                person_id=case.subject_id,
                changes={
                    "risk_level": (before, risk_level),
                    "ended_assignments": (",".join(map(str, ended)), ""),
                },
            )
            return case.id

        case_id, errors = await run(info, action)
        return CasePayload(case=await reload(info, CaseType, case_id, "case"), errors=errors)

    @strawberry.mutation(description="Assign a staff member to a case.")
    async def assign_case_worker(
        self, info: strawberry.Info, case: relay.GlobalID, staff: relay.GlobalID
    ) -> CasePayload:
        async def action(gate: Gate) -> int:
            case_id, staff_id = collect(
                lambda: ids.decode(case, "Case", "case")[1],
                lambda: ids.decode(staff, "Staff", "staff")[1],
            )
            kase = await gate.for_write(m.Case, case_id, "assign")
            worker = await gate.require(m.Staff, staff_id, "staff")
            if not worker.row.active:
                raise NotFound(("staff",))
            if kase.row.status == CaseStatus.CLOSED:
                raise DomainError(
                    ErrorCode.INVALID_TRANSITION, "个案已结案，不能分派工作人员", ("case",)
                )
            await gate.assign_worker(kase, staff_id, worker.row.roles)
            return case_id

        case_id, errors = await run(info, action)
        return CasePayload(case=await reload(info, CaseType, case_id, "case"), errors=errors)

    @strawberry.mutation(description="Record an intervention on a case you work on.")
    async def record_intervention(
        self, info: strawberry.Info, input: RecordInterventionInput
    ) -> InterventionPayload:
        async def action(gate: Gate) -> int:
            target, performed_at, notes, outcome = collect(
                lambda: _intervention_target(input),
                lambda: _when(input.performed_at, gate.now, "performedAt"),
                lambda: _text(input.notes, 10000, "notes"),
                lambda: _text(input.outcome, 2000, "outcome"),
            )
            model, number, field = target
            anchor = await gate.require(model, number, field)
            action = f"create:{input.kind.value}"
            gate.authorize(Entity.INTERVENTION, action, anchor.relations, anchor.conditions)
            if model is m.Case and anchor.row.status == CaseStatus.CLOSED:
                raise DomainError(
                    ErrorCode.INVALID_TRANSITION, "个案已结案，不能记录服务", ("case",)
                )
            unit_id = gate.subject.unit_id
            assert unit_id is not None
            intervention = m.Intervention(
                case_id=number if model is m.Case else None,
                person_id=anchor.row.subject_id if model is m.Case else None,
                family_id=number if model is m.Family else None,
                kind=input.kind,
                performed_at=performed_at,
                staff_id=gate.subject.staff_id,
                unit_id=unit_id,
            )
            gate.add(intervention)
            await gate.seal(intervention, {"notes": notes, "outcome": outcome})
            if input.completes_follow_up is not None:
                fid = ids.decode(input.completes_follow_up, "FollowUp", "completesFollowUp")[1]
                follow_up = await gate.for_write(m.FollowUp, fid, "update")
                if follow_up.row.case_id != intervention.case_id:
                    raise NotFound(("completesFollowUp",))
                follow_up.row.complete(intervention_id=intervention.id, at=gate.now)
                gate.record_write(
                    Entity.FOLLOW_UP,
                    fid,
                    ["done_at", "intervention_id"],
                    "complete",
                    person_id=anchor.person_id,
                )
            if input.next_follow_up_at is not None and intervention.case_id is not None:
                gate.authorize(Entity.FOLLOW_UP, "create", anchor.relations, anchor.conditions)
                await gate.insert(
                    m.FollowUp(
                        case_id=intervention.case_id,
                        person_id=intervention.person_id,
                        kind=input.kind,
                        due_at=_when_future(input.next_follow_up_at, gate.now, "nextFollowUpAt"),
                        assigned_staff_id=gate.subject.staff_id,
                        created_at=gate.now,
                    ),
                    ["due_at", "kind"],
                    person_id=anchor.person_id,
                )
            gate.record_write(
                Entity.INTERVENTION,
                intervention.id,
                _written(intervention),
                "create",
                person_id=anchor.person_id,
            )
            return intervention.id

        intervention_id, errors = await run(info, action)
        return InterventionPayload(
            intervention=await reload(info, InterventionType, intervention_id, "intervention"),
            errors=errors,
        )

    @strawberry.mutation(
        description="Raise an alert from a channel (hotline, grid, school, 110...)."
    )
    async def raise_alert(self, info: strawberry.Info, input: RaiseAlertInput) -> AlertPayload:
        async def action(gate: Gate) -> int:
            area_id, person_id, summary = collect(
                lambda: ids.decode(input.area_unit, "Unit", "areaUnit")[1],
                lambda: (
                    None
                    if input.person is None
                    else ids.decode(input.person, "Person", "person")[1]
                ),
                lambda: _text(input.summary, 5000, "summary"),
            )
            # Partner agencies have no jurisdiction: they may raise an alert for any area of
            # the district (the "directory" grant), and then see only what they raised.
            relations = await gate.new_record_relations(area_unit_id=area_id)
            gate.authorize(Entity.ALERT, "create", relations | {Relation.DIRECTORY})
            if person_id is not None:
                await gate.require(m.Person, person_id, "person")
            duplicates = 0
            if input.new_person is not None and person_id is None:
                person_id, duplicates = await _intake_person(gate, input.new_person, area_id)
            alert = m.Alert(
                possible_duplicates=duplicates,
                person_id=person_id,
                channel=input.channel,
                risk_level=input.risk_level,
                summary=summary,
                status=AlertStatus.OPEN,
                area_unit_id=area_id,
                target_unit_id=area_id,
                raised_at=gate.now,
                routed_at=gate.now,
                ack_deadline=gate.now + ctx(info).settings.ack_deadlines[input.risk_level],
                created_by_staff_id=gate.subject.staff_id,
                created_by_client_id=gate.subject.client_pk,
            )
            await gate.insert(alert, _written(alert), "create", person_id=person_id)
            return alert.id

        alert_id, errors = await run(info, action)
        return AlertPayload(alert=await reload(info, AlertType, alert_id, "alert"), errors=errors)

    @strawberry.mutation(description="Acknowledge an alert addressed to your team.")
    async def acknowledge_alert(self, info: strawberry.Info, id: relay.GlobalID) -> AlertPayload:
        async def action(gate: Gate) -> int:
            number = ids.decode(id, "Alert")[1]
            visible = await gate.for_write(m.Alert, number, "update")
            alert: m.Alert = visible.row
            staff_id = gate.subject.staff_id
            assert staff_id is not None
            alert.acknowledge(staff_id=staff_id, at=gate.now)
            gate.record_write(
                Entity.ALERT,
                alert.id,
                ["status", "acknowledged_at"],
                "acknowledge",
                person_id=visible.person_id,
            )
            return alert.id

        alert_id, errors = await run(info, action)
        return AlertPayload(alert=await reload(info, AlertType, alert_id, "alert"), errors=errors)
