"""Casework: assessments scored on the server, consents, and referrals that rest on them."""

from __future__ import annotations

import datetime

import strawberry
from strawberry import relay

from api.graphql import ids
from api.graphql.errors import UserError
from api.graphql.mutations.base import collect, reload, run
from api.graphql.mutations.persons import _text
from api.graphql.types.base import ctx
from api.graphql.types.enums import ConsentGiver, Instrument, InterventionKind
from api.graphql.types.followups import FollowUpType
from api.graphql.types.interventions import AssessmentType
from api.graphql.types.referrals import ConsentType, ReferralType
from authz.entities import Entity
from authz.gate import Gate, Order
from domain import models as m
from domain.alerts import AlertStatus
from domain.cases import RiskLevel
from domain.classification import FieldClass
from domain.errors import DomainError, ErrorCode, NotFound
from domain.instruments import score
from domain.referrals import ReferralStatus

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
            case_id, result = collect(
                lambda: ids.decode(input.case, "Case", "case")[1],
                lambda: score(input.instrument, list(input.answers)),
            )
            case = await gate.require(m.Case, case_id, "case")
            gate.authorize(Entity.ASSESSMENT, "create", case.relations, case.conditions)
            assessment = m.Assessment(
                person_id=case.row.subject_id,
                case_id=case_id,
                instrument=input.instrument,
                answers=list(input.answers),
                score=result.score,
                severity=result.severity,
                administered_at=gate.now,
                staff_id=gate.subject.staff_id,
            )
            await gate.insert(
                assessment, ["answers", "score", "severity"], "create", person_id=case.person_id
            )
            if result.self_harm:
                row: m.Case = case.row
                alert = m.Alert(
                    person_id=row.subject_id,
                    case_id=row.id,
                    channel=row.source_channel,
                    risk_level=RiskLevel.HIGH,
                    summary="测评提示自伤风险，请立即跟进",
                    status=AlertStatus.OPEN,
                    area_unit_id=row.area_unit_id,
                    target_unit_id=row.lead_unit_id,
                    raised_at=gate.now,
                    routed_at=gate.now,
                    ack_deadline=gate.now + ctx(info).settings.ack_deadlines[RiskLevel.HIGH],
                    created_by_staff_id=gate.subject.staff_id,
                )
                await gate.insert(
                    alert, ["risk_level", "summary"], "assessment_rule", person_id=row.subject_id
                )
                raised = True
            return assessment.id

        assessment_id, errors = await run(info, action)
        return AssessmentPayload(
            assessment=await reload(info, AssessmentType, assessment_id, "assessment"),
            alert_raised=raised and not errors,
            errors=errors,
        )

    @strawberry.mutation(description="Record a consent (知情同意); under 14, a guardian's.")
    async def record_consent(
        self, info: strawberry.Info, input: RecordConsentInput
    ) -> ConsentPayload:
        async def action(gate: Gate) -> int:
            person_id, recipient, purpose, scope, guardian = collect(
                lambda: ids.decode(input.person, "Person", "person")[1],
                lambda: ids.decode(input.recipient_unit, "Unit", "recipientUnit")[1],
                lambda: _text(input.purpose, 200, "purpose", required=True),
                lambda: _classes(input.scope, "scope"),
                lambda: (
                    None
                    if input.guardian is None
                    else ids.decode(input.guardian, "Person", "guardian")[1]
                ),
            )
            person = await gate.require(m.Person, person_id, "person")
            gate.authorize(Entity.CONSENT, "create", person.relations, person.conditions)
            if await gate.unit(recipient) is None:
                raise NotFound(("recipientUnit",))
            # An unknown birth date counts as under 14, as everywhere else.
            under_14 = person.row.is_under_consent_age
            if input.given_by == ConsentGiver.GUARDIAN or under_14:
                if input.given_by != ConsentGiver.GUARDIAN or guardian is None:
                    raise DomainError(ErrorCode.REQUIRED, "未满14周岁须由监护人同意", ("guardian",))
                links = await gate.children(
                    m.Guardianship,
                    m.Guardianship.ward_id,
                    [person_id],
                    order=Order(m.Guardianship.id),
                    limit=20,
                )
                if guardian not in {v.row.guardian_id for v in links.get(person_id, [])}:
                    raise NotFound(("guardian",))
            consent = m.Consent(
                person_id=person_id,
                given_by=input.given_by,
                guardian_id=guardian,
                recipient_unit_id=recipient,
                purpose=purpose,
                scope=scope,
                given_at=gate.now,
                valid_until=input.valid_until,
            )
            await gate.insert(
                consent, ["scope", "purpose", "recipient_unit_id"], "create", person_id=person_id
            )
            return consent.id

        consent_id, errors = await run(info, action)
        return ConsentPayload(
            consent=await reload(info, ConsentType, consent_id, "consent"), errors=errors
        )

    @strawberry.mutation(description="Withdraw a consent: referrals resting on it end at once.")
    async def withdraw_consent(self, info: strawberry.Info, id: relay.GlobalID) -> ConsentPayload:
        async def action(gate: Gate) -> int:
            number = ids.decode(id, "Consent")[1]
            visible = await gate.for_write(m.Consent, number, "update")
            visible.row.withdraw(gate.now)
            gate.record_write(
                Entity.CONSENT, number, ["withdrawn_at"], "withdraw", person_id=visible.person_id
            )
            return number

        consent_id, errors = await run(info, action)
        return ConsentPayload(
            consent=await reload(info, ConsentType, consent_id, "consent"), errors=errors
        )

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
                lambda: _text(input.purpose, 200, "purpose", required=True),
                lambda: _classes(input.shared_classes, "sharedClasses"),
                lambda: (
                    None
                    if input.consent is None
                    else ids.decode(input.consent, "Consent", "consent")[1]
                ),
                lambda: _text(input.override_reason, 2000, "overrideReason"),
            )
            case = await gate.require(m.Case, case_id, "case")
            gate.authorize(Entity.REFERRAL, "create", case.relations, case.conditions)
            if await gate.unit(to_unit) is None:
                raise NotFound(("toUnit",))
            row: m.Case = case.row
            if consent_id is None:
                if row.risk_level != RiskLevel.HIGH or not override:
                    raise DomainError(
                        ErrorCode.REQUIRED,
                        "非高风险个案转介须有当事人（或监护人）的知情同意",
                        ("consent",),
                    )
            else:
                consent = (await gate.require(m.Consent, consent_id, "consent")).row
                minor = (await gate.require(m.Person, row.subject_id, "case")).row
                if (
                    consent.person_id != row.subject_id
                    or consent.recipient_unit_id != to_unit
                    or not consent.in_force(gate.now)
                    or (minor.is_under_consent_age and consent.given_by != ConsentGiver.GUARDIAN)
                ):
                    raise DomainError(
                        ErrorCode.INVALID,
                        "该同意不适用于本次转介（对象、接收单位、有效期或监护人）",
                        ("consent",),
                    )
            referral = m.Referral(
                case_id=case_id,
                person_id=row.subject_id,
                from_unit_id=gate.subject.unit_id,
                to_unit_id=to_unit,
                purpose=purpose,
                shared_classes=shared,
                status=ReferralStatus.OFFERED,
                consent_id=consent_id,
                override_reason=override if consent_id is None else None,
                created_at=gate.now,
                expires_at=input.expires_at,
            )
            await gate.insert(
                referral, ["to_unit_id", "shared_classes"], "create", person_id=row.subject_id
            )
            return referral.id

        referral_id, errors = await run(info, action)
        return ReferralPayload(
            referral=await reload(info, ReferralType, referral_id, "referral"), errors=errors
        )

    @strawberry.mutation(description="Accept or decline a referral offered to your unit.")
    async def respond_to_referral(
        self, info: strawberry.Info, id: relay.GlobalID, accept: bool
    ) -> ReferralPayload:
        async def action(gate: Gate) -> int:
            number = ids.decode(id, "Referral")[1]
            visible = await gate.for_write(m.Referral, number, "update")
            if visible.row.to_unit_id != gate.subject.unit_id:
                raise DomainError(ErrorCode.FORBIDDEN, "只有接收单位可以答复转介")
            visible.row.respond(accept=accept, at=gate.now)
            gate.record_write(
                Entity.REFERRAL,
                number,
                ["status"],
                "accept" if accept else "decline",
                person_id=visible.person_id,
            )
            return number

        referral_id, errors = await run(info, action)
        return ReferralPayload(
            referral=await reload(info, ReferralType, referral_id, "referral"), errors=errors
        )


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
                    gate.subject.staff_id
                    if input.assigned_staff is None
                    else ids.decode(input.assigned_staff, "Staff", "assignedStaff")[1]
                ),
            )
            if input.due_at.tzinfo is None or input.due_at <= gate.now:
                raise DomainError(ErrorCode.INVALID, "随访时间须在将来（带时区）", ("dueAt",))
            case = await gate.require(m.Case, case_id, "case")
            gate.authorize(Entity.FOLLOW_UP, "create", case.relations, case.conditions)
            if staff_id != gate.subject.staff_id:
                await gate.require(m.Staff, staff_id, "assignedStaff")
            follow_up = m.FollowUp(
                case_id=case_id,
                person_id=case.row.subject_id,
                kind=input.kind,
                due_at=input.due_at,
                assigned_staff_id=staff_id,
                created_at=gate.now,
            )
            await gate.insert(follow_up, ["due_at", "kind"], "create", person_id=case.person_id)
            return follow_up.id

        follow_up_id, errors = await run(info, action)
        return FollowUpPayload(
            follow_up=await reload(info, FollowUpType, follow_up_id, "followUp"), errors=errors
        )

    @strawberry.mutation(description="Drop a follow-up that will not happen, with a reason.")
    async def drop_follow_up(
        self, info: strawberry.Info, id: relay.GlobalID, reason: str
    ) -> FollowUpPayload:
        async def action(gate: Gate) -> int:
            number = ids.decode(id, "FollowUp")[1]
            (text,) = collect(lambda: _text(reason, 500, "reason", required=True))
            visible = await gate.for_write(m.FollowUp, number, "update")
            visible.row.drop(reason=text or "", at=gate.now)
            await gate.seal_pending(visible.row)
            gate.record_write(
                Entity.FOLLOW_UP, number, ["dropped_reason"], "drop", person_id=visible.person_id
            )
            return number

        follow_up_id, errors = await run(info, action)
        return FollowUpPayload(
            follow_up=await reload(info, FollowUpType, follow_up_id, "followUp"), errors=errors
        )
