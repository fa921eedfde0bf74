"""Alerts: raised from a channel (or by a routing), addressed to a team with a deadline, and
acknowledged by that team."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

from api.services.intake import IntakePerson, intake_person
from api.services.notify import enqueue_for_alert
from authz.actions import Action
from authz.entities import Entity
from authz.gate import Forbidden, Gate, Permit
from authz.relations import Relation
from domain import models as m
from domain.cases import RiskLevel, SourceChannel
from domain.classification import written_fields
from domain.errors import NotFound
from domain.routing import UnitNode, alert_team, first_acting, route, serving
from domain.units import UnitKind

Deadlines = dict[RiskLevel, timedelta]


def routing_alert(gate: Gate, case: m.Case, lead: int, deadlines: Deadlines, why: str) -> m.Alert:
    """The alert every routing raises to the case's new lead team, with its tier's deadline."""
    risk = RiskLevel(case.risk_level)
    return m.Alert.raised(
        person_id=case.subject_id,
        case_id=case.id,
        channel=case.source_channel,
        risk=risk,
        summary=f"{why}（{risk.value}风险），请接手",
        area_unit_id=case.area_unit_id,
        owner_unit_id=lead,
        at=gate.now,
        within=deadlines[risk],
        staff_id=gate.subject.staff_id,
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
    alert = m.Alert.raised(
        person_id=case.subject_id,
        case_id=case.id,
        channel=case.source_channel,
        risk=risk,
        summary=summary,
        area_unit_id=case.area_unit_id,
        owner_unit_id=target_unit_id,
        at=gate.now,
        within=deadlines[risk],
        staff_id=gate.subject.staff_id,
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
    owner, targets = await address(gate, area_unit_id, risk)
    alert = m.Alert.raised(
        possible_duplicates=duplicates,
        person_id=person_id,
        channel=channel,
        risk=risk,
        summary=summary,
        area_unit_id=area_unit_id,
        owner_unit_id=owner,
        at=gate.now,
        within=deadlines[risk],
        staff_id=gate.subject.staff_id,
        client_id=gate.subject.client_pk,
    )
    alert_id = await gate.insert(
        permit, alert, written_fields(alert), "create", person_id=person_id
    )
    await send_to(gate, permit, alert, targets)
    await enqueue_for_alert(gate, permit, alert)
    return alert_id


async def address(gate: Gate, area_unit_id: int, risk: RiskLevel) -> tuple[int, tuple[int, ...]]:
    """Who an alert raised in an area goes to, by its tier (ADR 0009): HIGH to every unit of the
    joint team at once (police station, health centre, the community and its grid teams),
    MEDIUM to the governance centre, LOW to the community grid. The owner is the first of them
    someone can act for; if none can, where an escalation would take it (up to the duty
    officer), so an alert never waits at a unit nobody staffs."""
    units = await gate.units()
    nodes = [UnitNode(u.id, u.kind, u.path, u.area_unit_id) for u in units]
    area = next((n for n in nodes if n.id == area_unit_id), None)
    if area is None:
        raise NotFound(("areaUnit",))
    targets = alert_team(route(area, nodes, risk), nodes)
    acting, duty = await gate.acting()
    owner = first_acting(targets, {u.id: u.parent_id for u in units}, acting, duty)
    return owner, tuple(dict.fromkeys((owner, *targets)))


async def send_to(gate: Gate, permit: Permit, alert: m.Alert, targets: Sequence[int]) -> None:
    """Address the alert to each unit (the owner included), under the alert's permit."""
    for unit_id in targets:
        gate.add(permit, m.AlertTarget(alert_id=alert.id, unit_id=unit_id))
    await gate.flush()


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


async def dismiss_alert(gate: Gate, *, alert_id: int, reason: str) -> int:
    """Handled without a case: looked into and not a crisis. Taken on first if nobody had; the
    reason is sealed (it is about a person) and the alert closes."""
    me = gate.staff()
    target = await gate.for_write(m.Alert, alert_id)
    alert = target.row
    if me.unit_id != alert.target_unit_id:
        # The rest of a joint team may take an alert on, but only its owner closes it for all.
        raise Forbidden("只有负责该预警的单位可以关闭预警", ("id",))
    alert.dismiss(reason=reason, staff_id=me.id, at=gate.now)
    await gate.seal_pending(target.permit, alert)
    fields = ["status", "resolution", "dismissed_reason", "closed_at"]
    gate.wrote(target.permit, alert, fields, "dismiss", person_id=target.person_id)
    return alert.id


CONCERN_KINDS = {
    "mood": "情绪低落",
    "self_harm_talk": "提到轻生",
    "isolation": "长期独居、少与人来往",
    "conflict": "家庭矛盾",
    "health": "身体或用药问题",
    "other": "其他",
}
"""What a volunteer or an association may say a concern is about (the alert's summary starts
with it, so the team reads the kind before the text)."""

SPECIAL_FAMILY_OWNERS = {"shidu": UnitKind.FAMILY_PLANNING, "shangcan": UnitKind.FAMILY_PLANNING}
"""A concern about a 失独 or 伤残 family also reaches the association that serves them."""


async def raise_concern(
    gate: Gate,
    *,
    person_id: int,
    kind: str,
    urgency: RiskLevel,
    text: str | None,
    deadlines: Deadlines,
) -> int:
    """A volunteer or association raises a concern about someone they serve (linked to, or in
    their care by the policy): it becomes an alert routed like any other (by its urgency), and
    also reaches the association that serves the person's family when it is a 失独 or 伤残
    family. Afterwards the raiser follows only its status (``creator``)."""
    subject = await gate.require(m.Person, person_id, "person")
    permit = gate.authorize(Entity.ALERT, Action.CREATE, subject.relations, subject.conditions)
    area = subject.row.residence_unit_id
    owner, targets = await address(gate, area, urgency)
    held = await gate.conditions_of(m.Person, person_id)
    kinds = {SPECIAL_FAMILY_OWNERS[c] for c in held if c in SPECIAL_FAMILY_OWNERS}
    # Only the association serving the person's area: telling any other one would tell it
    # that this person's family is a 失独 / 伤残 family.
    nodes = [UnitNode(u.id, u.kind, u.path, u.area_unit_id) for u in await gate.units()]
    here = next(n for n in nodes if n.id == area)
    associations = [a for a in (serving(here, nodes, k) for k in sorted(kinds)) if a is not None]
    alert = m.Alert.raised(
        person_id=person_id,
        channel=SourceChannel.CONCERN,
        risk=urgency,
        summary=f"【{CONCERN_KINDS[kind]}】{text or ''}".strip(),
        area_unit_id=area,
        owner_unit_id=owner,
        at=gate.now,
        within=deadlines[urgency],
        staff_id=gate.subject.staff_id,
    )
    fields = ["risk_level", "summary", "target_unit_id", "channel"]
    alert_id = await gate.insert(permit, alert, fields, "concern", person_id=person_id)
    await send_to(gate, permit, alert, list(dict.fromkeys((*targets, *associations))))
    await enqueue_for_alert(gate, permit, alert)
    return alert_id
