"""Casework: assessments scored on the server, consents, and referrals that rest on them."""

from __future__ import annotations

import datetime

import strawberry
from strawberry import relay

from api.graphql import ids
from api.graphql import validators as v
from api.graphql.errors import UserError
from api.graphql.mutations.shell import mutate
from api.graphql.types.base import ctx
from api.graphql.types.enums import ConsentGiver, Instrument, InterventionKind
from api.graphql.types.followups import FollowUpType
from api.graphql.types.interventions import AssessmentType
from api.graphql.types.referrals import ConsentType, ReferralType
from api.graphql.validators import collect
from api.services import casework
from authz.gate import Gate
from domain.classification import FieldClass
from domain.errors import DomainError, ErrorCode
from domain.instruments import score

SHAREABLE = frozenset(c.value for c in FieldClass if c not in (FieldClass.AUDIT, FieldClass.SECRET))


@strawberry.input
class RecordAssessmentInput:
    case: relay.GlobalID
    instrument: Instrument
    answers: list[int]


@strawberry.type
class AssessmentPayload:
    assessment: AssessmentType | None
    alert_raised: bool = strawberry.field(
        default=False, description="A self-harm answer raised a high-risk alert to the case team."
    )
    errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.input
class RecordConsentInput:
    person: relay.GlobalID
    given_by: ConsentGiver
    recipient_unit: relay.GlobalID
    purpose: str
    scope: list[str] = strawberry.field(description="Field classes the consent covers.")
    guardian: relay.GlobalID | None = None
    valid_until: datetime.datetime | None = None


@strawberry.type
class ConsentPayload:
    consent: ConsentType | None
    errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.input
class ReferCaseInput:
    case: relay.GlobalID
    to_unit: relay.GlobalID
    purpose: str
    shared_classes: list[str]
    consent: relay.GlobalID | None = None
    override_reason: str | None = strawberry.field(
        default=None, description="High-risk cases only: why it is referred without consent."
    )
    expires_at: datetime.datetime | None = None


@strawberry.type
class ReferralPayload:
    referral: ReferralType | None
    errors: list[UserError] = strawberry.field(default_factory=list)


def _classes(raw: list[str], field: str) -> str:
    unknown = sorted(set(raw) - SHAREABLE)
    if unknown or not raw:
        raise DomainError(
            ErrorCode.INVALID, "字段类别无效：" + "、".join(unknown or ["空"]), (field,)
        )
    return ",".join(sorted(set(raw)))


@strawberry.type
class CaseworkMutations:
    @strawberry.mutation(
        description="Record a standard instrument (PHQ-9, GAD-7, EPDS, AD8): answers are "
        "validated and scored on the server; a self-harm answer (PHQ-9 item 9, EPDS item 10 "
        "above 0) raises a high-risk alert to the case team at once."
    )
    async def record_assessment(
        self, info: strawberry.Info, input: RecordAssessmentInput
    ) -> AssessmentPayload:
        raised = False

        async def action(gate: Gate) -> int:
            nonlocal raised
            (case_id, _) = collect(
                lambda: ids.decode(input.case, "Case", "case")[1],
                lambda: score(input.instrument, list(input.answers)),
            )
            assessment_id, raised = await casework.record_assessment(
                gate,
                case_id=case_id,
                instrument=input.instrument,
                answers=list(input.answers),
                deadlines=ctx(info).settings.ack_deadlines,
            )
            return assessment_id

        payload = await mutate(info, action, AssessmentPayload, AssessmentType, "assessment")
        payload.alert_raised = raised and not payload.errors
        return payload

    @strawberry.mutation(description="Record a consent (知情同意); under 14, a guardian's.")
    async def record_consent(
        self, info: strawberry.Info, input: RecordConsentInput
    ) -> ConsentPayload:
        async def action(gate: Gate) -> int:
            person_id, recipient, purpose, scope, guardian = collect(
                lambda: ids.decode(input.person, "Person", "person")[1],
                lambda: ids.decode(input.recipient_unit, "Unit", "recipientUnit")[1],
                lambda: v.text(input.purpose, 200, "purpose", required=True),
                lambda: _classes(input.scope, "scope"),
                lambda: (
                    None
                    if input.guardian is None
                    else ids.decode(input.guardian, "Person", "guardian")[1]
                ),
            )
            return await casework.record_consent(
                gate,
                person_id=person_id,
                given_by=input.given_by,
                recipient_unit_id=recipient,
                purpose=purpose,
                scope=scope,
                guardian_id=guardian,
                valid_until=input.valid_until,
            )

        return await mutate(info, action, ConsentPayload, ConsentType, "consent")

    @strawberry.mutation(description="Withdraw a consent: referrals resting on it end at once.")
    async def withdraw_consent(self, info: strawberry.Info, id: relay.GlobalID) -> ConsentPayload:
        async def action(gate: Gate) -> int:
            number = ids.decode(id, "Consent")[1]
            return await casework.withdraw_consent(gate, consent_id=number)

        return await mutate(info, action, ConsentPayload, ConsentType, "consent")

    @strawberry.mutation(
        description="Offer a case to another unit or partner agency, sharing the given classes. "
        "Needs the subject's consent in force for that unit (a guardian's under 14), unless the "
        "case is high risk and a reason is given."
    )
    async def refer_case(self, info: strawberry.Info, input: ReferCaseInput) -> ReferralPayload:
        async def action(gate: Gate) -> int:
            case_id, to_unit, purpose, shared, consent_id, override = collect(
                lambda: ids.decode(input.case, "Case", "case")[1],
                lambda: ids.decode(input.to_unit, "Unit", "toUnit")[1],
                lambda: v.text(input.purpose, 200, "purpose", required=True),
                lambda: _classes(input.shared_classes, "sharedClasses"),
                lambda: (
                    None
                    if input.consent is None
                    else ids.decode(input.consent, "Consent", "consent")[1]
                ),
                lambda: v.text(input.override_reason, 2000, "overrideReason"),
            )
            return await casework.refer_case(
                gate,
                case_id=case_id,
                to_unit_id=to_unit,
                purpose=purpose,
                shared_classes=shared,
                consent_id=consent_id,
                override_reason=override,
                expires_at=input.expires_at,
            )

        return await mutate(info, action, ReferralPayload, ReferralType, "referral")

    @strawberry.mutation(description="Accept or decline a referral offered to your unit.")
    async def respond_to_referral(
        self, info: strawberry.Info, id: relay.GlobalID, accept: bool
    ) -> ReferralPayload:
        async def action(gate: Gate) -> int:
            number = ids.decode(id, "Referral")[1]
            return await casework.respond_to_referral(gate, referral_id=number, accept=accept)

        return await mutate(info, action, ReferralPayload, ReferralType, "referral")


@strawberry.input
class ScheduleFollowUpInput:
    case: relay.GlobalID
    kind: InterventionKind
    due_at: datetime.datetime
    assigned_staff: relay.GlobalID | None = strawberry.field(
        default=None, description="Default: you."
    )


@strawberry.type
class FollowUpPayload:
    follow_up: FollowUpType | None
    errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.type
class FollowUpMutations:
    @strawberry.mutation(description="Schedule a follow-up of a case's support plan.")
    async def schedule_follow_up(
        self, info: strawberry.Info, input: ScheduleFollowUpInput
    ) -> FollowUpPayload:
        async def action(gate: Gate) -> int:
            case_id, staff_id = collect(
                lambda: ids.decode(input.case, "Case", "case")[1],
                lambda: (
                    None
                    if input.assigned_staff is None
                    else ids.decode(input.assigned_staff, "Staff", "assignedStaff")[1]
                ),
            )
            if input.due_at.tzinfo is None or input.due_at <= gate.now:
                raise DomainError(ErrorCode.INVALID, "随访时间须在将来（带时区）", ("dueAt",))
            return await casework.schedule_follow_up(
                gate, case_id=case_id, kind=input.kind, due_at=input.due_at, staff_id=staff_id
            )

        return await mutate(info, action, FollowUpPayload, FollowUpType, "follow_up")

    @strawberry.mutation(description="Drop a follow-up that will not happen, with a reason.")
    async def drop_follow_up(
        self, info: strawberry.Info, id: relay.GlobalID, reason: str
    ) -> FollowUpPayload:
        async def action(gate: Gate) -> int:
            number = ids.decode(id, "FollowUp")[1]
            (text,) = collect(lambda: v.text(reason, 500, "reason", required=True))
            return await casework.drop_follow_up(gate, follow_up_id=number, reason=text or "")

        return await mutate(info, action, FollowUpPayload, FollowUpType, "follow_up")
