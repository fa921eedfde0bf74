"""Alerts: raised from a channel (or by a routing), addressed to a team with a deadline, and
acknowledged by that team."""

from __future__ import annotations

from datetime import timedelta

from api.services.intake import IntakePerson, intake_person
from api.services.notify import enqueue_for_alert
from authz.actions import Action
from authz.entities import Entity
from authz.gate import Gate, Permit
from authz.relations import Relation
from domain import models as m
from domain.alerts import AlertStatus
from domain.cases import RiskLevel, SourceChannel
from domain.classification import written_fields

Deadlines = dict[RiskLevel, timedelta]


def routing_alert(gate: Gate, case: m.Case, lead: int, deadlines: Deadlines, why: str) -> m.Alert:
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


async def raise_for_case(
    gate: Gate,
    permit: Permit,
    case: m.Case,
    *,
    risk: RiskLevel,
    summary: str,
    target_unit_id: int,
    deadlines: Deadlines,
    fields: tuple[str, ...],
    action: str,
) -> int:
    """An alert about a case, raised by a rule (a self-harm answer) under the case's permit."""
    alert = m.Alert(
        person_id=case.subject_id,
        case_id=case.id,
        channel=case.source_channel,
        risk_level=risk,
        summary=summary,
        status=AlertStatus.OPEN,
        area_unit_id=case.area_unit_id,
        target_unit_id=target_unit_id,
        raised_at=gate.now,
        routed_at=gate.now,
        ack_deadline=gate.now + deadlines[risk],
        created_by_staff_id=gate.subject.staff_id,
    )
    alert_id = await gate.insert(permit, alert, fields, action, person_id=case.subject_id)
    await enqueue_for_alert(gate, permit, alert)
    return alert_id


async def raise_alert(
    gate: Gate,
    *,
    area_unit_id: int,
    channel: SourceChannel,
    risk: RiskLevel,
    summary: str | None,
    person_id: int | None,
    new_person: IntakePerson | None,
    deadlines: Deadlines,
) -> int:
    """An alert from a channel (hotline, grid, school, 110, a partner system). Partner agencies
    have no jurisdiction: they may raise an alert for any area of the district (the "directory"
    grant), and then see only what they raised."""
    relations = await gate.new_record_relations(area_unit_id=area_unit_id)
    permit = gate.authorize(Entity.ALERT, Action.CREATE, relations | {Relation.DIRECTORY})
    if person_id is not None:
        await gate.require(m.Person, person_id, "person")
    duplicates = 0
    if new_person is not None and person_id is None:
        person_id, duplicates = await intake_person(gate, new_person, area_unit_id)
    alert = m.Alert(
        possible_duplicates=duplicates,
        person_id=person_id,
        channel=channel,
        risk_level=risk,
        summary=summary,
        status=AlertStatus.OPEN,
        area_unit_id=area_unit_id,
        target_unit_id=area_unit_id,
        raised_at=gate.now,
        routed_at=gate.now,
        ack_deadline=gate.now + deadlines[risk],
        created_by_staff_id=gate.subject.staff_id,
        created_by_client_id=gate.subject.client_pk,
    )
    alert_id = await gate.insert(
        permit, alert, written_fields(alert), "create", person_id=person_id
    )
    await enqueue_for_alert(gate, permit, alert)
    return alert_id


async def acknowledge_alert(gate: Gate, *, alert_id: int) -> int:
    """The team an alert is addressed to takes it on."""
    me = gate.staff()
    target = await gate.for_write(m.Alert, alert_id)
    alert = target.row
    alert.acknowledge(staff_id=me.id, at=gate.now)
    gate.wrote(
        target.permit,
        alert,
        ["status", "acknowledged_at"],
        "acknowledge",
        person_id=target.person_id,
    )
    return alert.id
