"""Casework around a case: assessments scored on the server, consents, the referrals that rest
on them, and follow-ups."""

from __future__ import annotations

import datetime

from api.services.alerts import Deadlines, raise_for_case
from api.services.intake import guardians_of
from authz.actions import Action
from authz.entities import Entity
from authz.gate import Gate
from domain import models as m
from domain.assessments import Instrument
from domain.cases import RiskLevel
from domain.consents import ConsentGiver
from domain.errors import DomainError, ErrorCode, NotFound
from domain.instruments import score
from domain.interventions import InterventionKind
from domain.referrals import ReferralStatus


async def record_assessment(
    gate: Gate, *, case_id: int, instrument: Instrument, answers: list[int], deadlines: Deadlines
) -> tuple[int, bool]:
    """Score a standard instrument on the server; a self-harm answer (PHQ-9 item 9, EPDS item
    10 above 0) raises a high-risk alert to the case team at once. Returns (id, alert raised)."""
    result = score(instrument, answers)
    case = await gate.require(m.Case, case_id, "case")
    permit = gate.authorize(Entity.ASSESSMENT, Action.CREATE, case.relations, case.conditions)
    assessment = m.Assessment(
        person_id=case.row.subject_id,
        case_id=case_id,
        instrument=instrument,
        answers=answers,
        score=result.score,
        severity=result.severity,
        administered_at=gate.now,
        staff_id=gate.subject.staff_id,
    )
    fields = ["answers", "score", "severity"]
    await gate.insert(permit, assessment, fields, "create", person_id=case.person_id)
    if result.self_harm:
        await raise_for_case(
            gate,
            permit,
            case.row,
            risk=RiskLevel.HIGH,
            summary="测评提示自伤风险，请立即跟进",
            target_unit_id=case.row.lead_unit_id,
            deadlines=deadlines,
            fields=("risk_level", "summary"),
            action="assessment_rule",
        )
    return assessment.id, result.self_harm


async def record_consent(
    gate: Gate,
    *,
    person_id: int,
    given_by: ConsentGiver,
    recipient_unit_id: int,
    purpose: str,
    scope: str,
    guardian_id: int | None,
    valid_until: datetime.datetime | None,
) -> int:
    """A consent (知情同意); under 14 (or with no known birth date) a recorded guardian's."""
    person = await gate.require(m.Person, person_id, "person")
    permit = gate.authorize(Entity.CONSENT, Action.CREATE, person.relations, person.conditions)
    if await gate.unit(recipient_unit_id) is None:
        raise NotFound(("recipientUnit",))
    if given_by == ConsentGiver.GUARDIAN or person.row.is_under_consent_age:
        if given_by != ConsentGiver.GUARDIAN or guardian_id is None:
            raise DomainError(ErrorCode.REQUIRED, "未满14周岁须由监护人同意", ("guardian",))
        if guardian_id not in await guardians_of(gate, person_id):
            raise NotFound(("guardian",))
    consent = m.Consent(
        person_id=person_id,
        given_by=given_by,
        guardian_id=guardian_id,
        recipient_unit_id=recipient_unit_id,
        purpose=purpose,
        scope=scope,
        given_at=gate.now,
        valid_until=valid_until,
    )
    fields = ["scope", "purpose", "recipient_unit_id"]
    return await gate.insert(permit, consent, fields, "create", person_id=person_id)


async def withdraw_consent(gate: Gate, *, consent_id: int) -> int:
    """Withdrawing a consent ends the referrals resting on it at once (they check it)."""
    target = await gate.for_write(m.Consent, consent_id)
    target.row.withdraw(gate.now)
    gate.wrote(target.permit, target.row, ["withdrawn_at"], "withdraw", person_id=target.person_id)
    return consent_id


async def refer_case(
    gate: Gate,
    *,
    case_id: int,
    to_unit_id: int,
    purpose: str,
    shared_classes: str,
    consent_id: int | None,
    override_reason: str | None,
    expires_at: datetime.datetime | None,
) -> int:
    """Offer a case to another unit or partner, sharing the given classes: with the subject's
    consent in force for that unit (a guardian's under 14), or, for a high-risk case only,
    with a reason instead."""
    case = await gate.require(m.Case, case_id, "case")
    permit = gate.authorize(Entity.REFERRAL, Action.CREATE, case.relations, case.conditions)
    if await gate.unit(to_unit_id) is None:
        raise NotFound(("toUnit",))
    row = case.row
    if consent_id is None:
        if row.risk_level != RiskLevel.HIGH or not override_reason:
            raise DomainError(
                ErrorCode.REQUIRED, "非高风险个案转介须有当事人（或监护人）的知情同意", ("consent",)
            )
    else:
        consent = (await gate.require(m.Consent, consent_id, "consent")).row
        subject = (await gate.require(m.Person, row.subject_id, "case")).row
        if (
            consent.person_id != row.subject_id
            or consent.recipient_unit_id != to_unit_id
            or not consent.in_force(gate.now)
            or (subject.is_under_consent_age and consent.given_by != ConsentGiver.GUARDIAN)
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
        to_unit_id=to_unit_id,
        purpose=purpose,
        shared_classes=shared_classes,
        status=ReferralStatus.OFFERED,
        consent_id=consent_id,
        override_reason=override_reason if consent_id is None else None,
        created_at=gate.now,
        expires_at=expires_at,
    )
    fields = ["to_unit_id", "shared_classes"]
    return await gate.insert(permit, referral, fields, "create", person_id=row.subject_id)


async def respond_to_referral(gate: Gate, *, referral_id: int, accept: bool) -> int:
    target = await gate.for_write(m.Referral, referral_id)
    if target.row.to_unit_id != gate.subject.unit_id:
        raise DomainError(ErrorCode.FORBIDDEN, "只有接收单位可以答复转介")
    target.row.respond(accept=accept, at=gate.now)
    action = "accept" if accept else "decline"
    gate.wrote(target.permit, target.row, ["status"], action, person_id=target.person_id)
    return referral_id


async def schedule_follow_up(
    gate: Gate,
    *,
    case_id: int,
    kind: InterventionKind,
    due_at: datetime.datetime,
    staff_id: int | None,
) -> int:
    """A follow-up of a case's support plan, assigned to the scheduler unless said otherwise."""
    case = await gate.require(m.Case, case_id, "case")
    permit = gate.authorize(Entity.FOLLOW_UP, Action.CREATE, case.relations, case.conditions)
    if staff_id is None:
        staff_id = gate.subject.staff_id
    elif staff_id != gate.subject.staff_id:
        await gate.require(m.Staff, staff_id, "assignedStaff")
    follow_up = m.FollowUp(
        case_id=case_id,
        person_id=case.row.subject_id,
        kind=kind,
        due_at=due_at,
        assigned_staff_id=staff_id,
        created_at=gate.now,
    )
    return await gate.insert(permit, follow_up, ["due_at", "kind"], person_id=case.person_id)


async def drop_follow_up(gate: Gate, *, follow_up_id: int, reason: str) -> int:
    target = await gate.for_write(m.FollowUp, follow_up_id)
    target.row.drop(reason=reason, at=gate.now)
    await gate.seal_pending(target.permit, target.row)
    gate.wrote(target.permit, target.row, ["dropped_reason"], "drop", person_id=target.person_id)
    return follow_up_id
