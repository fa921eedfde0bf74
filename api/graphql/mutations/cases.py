"""Mutations on cases, interventions and alerts."""

from __future__ import annotations

import datetime
from enum import Enum

import strawberry
from strawberry import relay

from api.graphql import ids
from api.graphql import validators as v
from api.graphql.errors import UserError
from api.graphql.mutations.shell import mutate, reload, run
from api.graphql.types.alerts import AlertType
from api.graphql.types.base import ctx, load_one
from api.graphql.types.cases import CaseType
from api.graphql.types.enums import (
    CaseStatus,
    Gender,
    InterventionKind,
    RiskLevel,
    SourceChannel,
)
from api.graphql.types.interventions import InterventionType
from api.graphql.types.units import UnitType
from api.graphql.validators import collect
from api.services import alerts, cases
from api.services.intake import IntakePerson
from authz.gate import Gate
from domain.errors import DomainError, ErrorCode


@strawberry.input
class OpenCaseInput:
    subject: relay.GlobalID
    source_channel: SourceChannel
    risk_level: RiskLevel
    presenting_problem: str | None = None
    family: relay.GlobalID | None = None
    alert: relay.GlobalID | None = strawberry.field(
        default=None,
        description="The alert this case is opened from: it is taken on, linked and closed.",
    )


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


@strawberry.type(
    description="Where a new case went. The case itself may be out of your sight now (a "
    "high-risk case goes to the police station's joint team): this says so without personal data."
)
class CaseRouting:
    lead_unit: UnitType | None
    co_units: list[UnitType]
    visible_to_you: bool = strawberry.field(description="Whether `case` is shown to you.")


@strawberry.type
class CasePayload:
    case: CaseType | None
    errors: list[UserError]
    routing: CaseRouting | None = strawberry.field(
        default=None, description="openCase: the team the case was routed to."
    )


@strawberry.enum(description="What a concern is about.")
class ConcernKind(Enum):
    MOOD = "mood"
    SELF_HARM_TALK = "self_harm_talk"
    ISOLATION = "isolation"
    CONFLICT = "conflict"
    HEALTH = "health"
    OTHER = "other"


@strawberry.input(description="A volunteer's or an association's concern about someone they serve.")
class RaiseConcernInput:
    person: relay.GlobalID
    kind: ConcernKind
    urgency: RiskLevel = strawberry.field(description="Routes it like an alert of that tier.")
    text: str | None = None


@strawberry.type
class DismissAlertPayload:
    alert: AlertType | None
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


def _intervention_target(input: RecordInterventionInput) -> tuple[int | None, int | None]:
    if (input.case is None) == (input.family is None):
        raise DomainError(ErrorCode.INVALID, "须且只能指定个案或家庭之一", ("case",))
    if input.case is not None:
        return ids.decode(input.case, "Case", "case")[1], None
    assert input.family is not None
    return None, ids.decode(input.family, "Family", "family")[1]


def _case_and_staff(case: relay.GlobalID, staff: relay.GlobalID) -> tuple[int, int]:
    case_id, staff_id = collect(
        lambda: ids.decode(case, "Case", "case")[1],
        lambda: ids.decode(staff, "Staff", "staff")[1],
    )
    return case_id, staff_id


@strawberry.type
class CaseMutations:
    @strawberry.mutation(
        description="Open a case for a person you can see; you are assigned to it."
    )
    async def open_case(self, info: strawberry.Info, input: OpenCaseInput) -> CasePayload:
        async def action(gate: Gate) -> cases.OpenedCase:
            subject_id, family_id, problem, alert_id = collect(
                lambda: ids.decode(input.subject, "Person", "subject")[1],
                lambda: (
                    None
                    if input.family is None
                    else ids.decode(input.family, "Family", "family")[1]
                ),
                lambda: v.text(input.presenting_problem, 5000, "presentingProblem"),
                lambda: (
                    None if input.alert is None else ids.decode(input.alert, "Alert", "alert")[1]
                ),
            )
            return await cases.open_case(
                gate,
                subject_id=subject_id,
                family_id=family_id,
                source_channel=input.source_channel,
                risk=input.risk_level,
                presenting_problem=problem,
                deadlines=ctx(info).settings.ack_deadlines,
                alert_id=alert_id,
            )

        opened, errors = await run(info, action)
        if opened is None:
            return CasePayload(case=None, errors=errors)
        case = await reload(info, CaseType, opened.case_id, "case")
        units = [await load_one(info, UnitType, u) for u in opened.co_unit_ids]
        routing = CaseRouting(
            lead_unit=await load_one(info, UnitType, opened.lead_unit_id),
            co_units=[u for u in units if u is not None],
            visible_to_you=case is not None,
        )
        return CasePayload(case=case, errors=errors, routing=routing)

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
                    (lambda val=value, n=graph, lim=limit: v.text(val, lim, n) or None)
                    for _, graph, limit, value in given
                )
            )
            text = {attr: value for (attr, *_), value in zip(given, values, strict=True)}
            return await cases.update_case(gate, case_id=number, text=text)

        return await mutate(info, action, CasePayload, CaseType, "case")

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
            (reason_text,) = collect(lambda: v.text(reason, 2000, "reason"))
            return await cases.change_status(
                gate,
                case_id=number,
                status=status,
                reason=reason_text,
                drop_open_follow_ups=drop_open_follow_ups,
            )

        return await mutate(info, action, CasePayload, CaseType, "case")

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
            collect(lambda: v.text(reason, 2000, "reason", required=True))
            return await cases.set_risk_level(
                gate, case_id=number, risk=risk_level, deadlines=ctx(info).settings.ack_deadlines
            )

        return await mutate(info, action, CasePayload, CaseType, "case")

    @strawberry.mutation(description="Assign a staff member to a case.")
    async def assign_case_worker(
        self, info: strawberry.Info, case: relay.GlobalID, staff: relay.GlobalID
    ) -> CasePayload:
        async def action(gate: Gate) -> int:
            case_id, staff_id = _case_and_staff(case, staff)
            return await cases.assign_worker(gate, case_id=case_id, staff_id=staff_id)

        return await mutate(info, action, CasePayload, CaseType, "case")

    @strawberry.mutation(
        description="Take a worker off a case: their access through it ends now. The case's "
        "lead unit (or the governance centre for its area) may."
    )
    async def end_case_assignment(
        self, info: strawberry.Info, case: relay.GlobalID, staff: relay.GlobalID
    ) -> CasePayload:
        async def action(gate: Gate) -> int:
            case_id, staff_id = _case_and_staff(case, staff)
            return await cases.end_assignment(gate, case_id=case_id, staff_id=staff_id)

        return await mutate(info, action, CasePayload, CaseType, "case")

    @strawberry.mutation(description="Record an intervention on a case you work on.")
    async def record_intervention(
        self, info: strawberry.Info, input: RecordInterventionInput
    ) -> InterventionPayload:
        async def action(gate: Gate) -> int:
            (case_id, family_id), performed_at, notes, outcome = collect(
                lambda: _intervention_target(input),
                lambda: v.when_past(input.performed_at, gate.now, "performedAt"),
                lambda: v.text(input.notes, 10000, "notes"),
                lambda: v.text(input.outcome, 2000, "outcome"),
            )
            completes = None
            if input.completes_follow_up is not None:
                completes = ids.decode(input.completes_follow_up, "FollowUp", "completesFollowUp")[
                    1
                ]
            next_at = input.next_follow_up_at
            if next_at is not None and case_id is not None:
                next_at = v.when_future(next_at, gate.now, "nextFollowUpAt")
            return await cases.record_intervention(
                gate,
                kind=input.kind,
                case_id=case_id,
                family_id=family_id,
                performed_at=performed_at,
                notes=notes,
                outcome=outcome,
                completes_follow_up=completes,
                next_follow_up_at=next_at,
            )

        return await mutate(info, action, InterventionPayload, InterventionType, "intervention")

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
                lambda: v.text(input.summary, 5000, "summary"),
            )
            who = input.new_person
            new_person = None
            if who is not None and person_id is None:
                name, (number, born), phone = collect(
                    lambda: v.text(who.name, 50, "newPerson", required=True),
                    lambda: v.id_number(who.id_number, who.birth_date),
                    lambda: v.phone(who.phone),
                )
                new_person = IntakePerson(name, who.gender, born, number, phone)
            return await alerts.raise_alert(
                gate,
                area_unit_id=area_id,
                channel=input.channel,
                risk=input.risk_level,
                summary=summary,
                person_id=person_id,
                new_person=new_person,
                deadlines=ctx(info).settings.ack_deadlines,
            )

        return await mutate(info, action, AlertPayload, AlertType, "alert")

    @strawberry.mutation(
        description="Close an alert that needs no case (looked into, not a crisis), with a "
        "reason; it is taken on first if nobody had."
    )
    async def dismiss_alert(
        self, info: strawberry.Info, id: relay.GlobalID, reason: str
    ) -> DismissAlertPayload:
        async def action(gate: Gate) -> int:
            number = ids.decode(id, "Alert")[1]
            (text,) = collect(lambda: v.text(reason, 2000, "reason", required=True))
            return await alerts.dismiss_alert(gate, alert_id=number, reason=text or "")

        return await mutate(info, action, DismissAlertPayload, AlertType, "alert")

    @strawberry.mutation(
        description="Raise a concern about someone you visit or serve (volunteers, the family-"
        "planning association): it becomes an alert routed by its urgency, and you follow only "
        "its status afterwards."
    )
    async def raise_concern(self, info: strawberry.Info, input: RaiseConcernInput) -> AlertPayload:
        async def action(gate: Gate) -> int:
            person_id, text = collect(
                lambda: ids.decode(input.person, "Person", "person")[1],
                lambda: v.text(input.text, 2000, "text"),
            )
            return await alerts.raise_concern(
                gate,
                person_id=person_id,
                kind=input.kind.value,
                urgency=input.urgency,
                text=text,
                deadlines=ctx(info).settings.ack_deadlines,
            )

        return await mutate(info, action, AlertPayload, AlertType, "alert")

    @strawberry.mutation(description="Acknowledge an alert addressed to your team.")
    async def acknowledge_alert(self, info: strawberry.Info, id: relay.GlobalID) -> AlertPayload:
        async def action(gate: Gate) -> int:
            number = ids.decode(id, "Alert")[1]
            return await alerts.acknowledge_alert(gate, alert_id=number)

        return await mutate(info, action, AlertPayload, AlertType, "alert")
