"""The query root: ``node``/``nodes``, ``viewer`` and filtered, ordered connections.

Every resolver here goes through ``info.context.gate``; none of them sees a session.
"""

from __future__ import annotations

import asyncio
import datetime
from collections.abc import Sequence
from enum import Enum
from typing import Any, TypeVar

import strawberry
from sqlalchemy.orm import InstrumentedAttribute
from strawberry import relay
from strawberry.types.base import get_object_definition

from api.graphql import ids
from api.graphql.selection import requested
from api.graphql.types.alerts import AlertType
from api.graphql.types.audit import AccessEventType
from api.graphql.types.base import Connection, Edge, Gated, PageInfo, _Counter, ctx, load_one
from api.graphql.types.cases import AssignmentType, CaseType, StatusChangeType
from api.graphql.types.emergency import EmergencyAccessType
from api.graphql.types.enums import (
    AlertStatus,
    CaseStatus,
    Gender,
    InterventionKind,
    ReferralStatus,
    RiskLevel,
    SpecialFamilyType,
    UnitKind,
)
from api.graphql.types.families import FamilyMemberType, FamilyType
from api.graphql.types.followups import FollowUpType
from api.graphql.types.interventions import AssessmentType, InterventionType
from api.graphql.types.partners import PartnerClientType
from api.graphql.types.persons import GuardianType, PersonType
from api.graphql.types.referrals import ConsentType, ReferralType
from api.graphql.types.screening import ScreeningCampaignType
from api.graphql.types.units import StaffType, UnitType, Viewer
from api.services import intake
from authz.gate import Filter, Order
from domain import models as m
from domain.errors import DomainError, ErrorCode
from domain.values import MobilePhone, ResidentId

G = TypeVar("G", bound=Gated)

NODE_TYPES: dict[str, type[Gated]] = {
    get_object_definition(t, strict=True).name: t
    for t in (
        PersonType,
        GuardianType,
        FamilyType,
        FamilyMemberType,
        CaseType,
        AssignmentType,
        StatusChangeType,
        InterventionType,
        AssessmentType,
        AlertType,
        ReferralType,
        ConsentType,
        UnitType,
        StaffType,
        EmergencyAccessType,
        AccessEventType,
        PartnerClientType,
        FollowUpType,
        ScreeningCampaignType,
    )
}


@strawberry.enum
class OrderDirection(Enum):
    ASC = "asc"
    DESC = "desc"


def _page_size(info: strawberry.Info, first: int | None) -> int:
    settings = ctx(info).settings
    if first is None:
        return int(settings.default_page_size)
    if not 1 <= first <= settings.max_page_size:
        raise DomainError(
            ErrorCode.INVALID, f"每页条数须在1到{settings.max_page_size}之间", ("first",)
        )
    return first


def _id_number(raw: str | None) -> str | None:
    if raw is None:
        return None
    try:
        return ResidentId.parse(raw).value
    except DomainError as e:
        raise e.at("filter", "idNumber") from None


def _unit_id(raw: relay.GlobalID | None, field: str) -> int | None:
    return None if raw is None else ids.decode(raw, "Unit", field)[1]


async def _connection(
    info: strawberry.Info,
    type_cls: type[G],
    *,
    order: Order,
    first: int | None,
    after: str | None,
    filters: Sequence[Filter],
) -> Connection[G]:
    gate = ctx(info).gate
    size = _page_size(info, first)
    counter = _Counter(lambda: gate.count(type_cls.model, filters=filters))
    if after is None and not requested(info) & {"edges", "pageInfo"}:
        # Only ``totalCount``: no page to fetch (an indicator query asked for three counts and
        # loaded three pages of rows it never showed; docs/performance.md). The order is still
        # checked, so a refused order is refused the same way with or without edges (and a
        # cursor, when given, is validated by the page path below).
        gate.checked_order(type_cls.model, order)
        return Connection(
            edges=[],
            page_info=PageInfo(
                has_next_page=False, has_previous_page=False, start_cursor=None, end_cursor=None
            ),
            _counter=counter,
        )
    page = await gate.page(type_cls.model, order=order, first=size, after=after, filters=filters)
    names = requested(info, ("edges", "node"))
    # A cursor carries its row's order value: when cursors are shown, that value is disclosed.
    shown = "cursor" in requested(info, ("edges",)) or bool(
        requested(info, ("pageInfo",)) & {"startCursor", "endCursor"}
    )
    also = (page.order_key,) if shown and page.order_key else ()
    edges = [
        Edge(cursor=cursor, node=type_cls.from_names(v, info, names, also))
        for v, cursor in zip(page.items, page.cursors, strict=True)
    ]
    return Connection(
        edges=edges,
        page_info=PageInfo(
            has_next_page=page.has_next,
            has_previous_page=page.has_previous,
            start_cursor=page.cursors[0] if page.cursors else None,
            end_cursor=page.cursors[-1] if page.cursors else None,
        ),
        _counter=counter,
    )


def _blind(
    info: strawberry.Info,
    column: InstrumentedAttribute[bytes | None],
    kind: str,
    value: str | None,
    field: str,
) -> list[Filter]:
    """Exact match on an encrypted field, through its blind index."""
    if value is None:
        return []
    return [Filter(column, "eq", ctx(info).gate.blind(kind, value), field)]


def _eq(column: InstrumentedAttribute[Any], value: object, field: str) -> list[Filter]:
    return [] if value is None else [Filter(column, "eq", value, field)]


def _in(
    column: InstrumentedAttribute[Any], values: Sequence[object] | None, field: str
) -> list[Filter]:
    return [] if not values else [Filter(column, "in", values, field)]


# -- filter and order inputs --------------------------------------------------------------------


@strawberry.input
class PersonFilter:
    id_number: str | None = strawberry.field(
        default=None,
        description="Exact ID number; allowed only if you may read ID numbers of every person "
        "you can see (otherwise use lookupPersons).",
    )
    residence_unit: relay.GlobalID | None = None
    school: relay.GlobalID | None = None
    gender: Gender | None = None


@strawberry.enum
class PersonOrderField(Enum):
    CREATED_AT = "created_at"


@strawberry.input
class PersonOrder:
    field: PersonOrderField = PersonOrderField.CREATED_AT
    direction: OrderDirection = OrderDirection.DESC


@strawberry.input
class CaseFilter:
    status: list[CaseStatus] | None = None
    risk_level: list[RiskLevel] | None = None
    lead_unit: relay.GlobalID | None = None
    area_unit: relay.GlobalID | None = None
    opened_after: datetime.datetime | None = None
    opened_before: datetime.datetime | None = None


@strawberry.input
class CaseOrder:
    direction: OrderDirection = OrderDirection.DESC


@strawberry.input
class FamilyFilter:
    residence_unit: relay.GlobalID | None = None
    special_type: SpecialFamilyType | None = None


@strawberry.input
class InterventionFilter:
    kind: list[InterventionKind] | None = None
    performed_after: datetime.datetime | None = None


@strawberry.input
class AlertFilter:
    status: list[AlertStatus] | None = None
    risk_level: list[RiskLevel] | None = None
    target_unit: relay.GlobalID | None = None


@strawberry.enum
class AlertOrderField(Enum):
    RAISED_AT = "raised_at"
    ACK_DEADLINE = "ack_deadline"


@strawberry.input
class AlertOrder:
    field: AlertOrderField = AlertOrderField.RAISED_AT
    direction: OrderDirection = OrderDirection.DESC


@strawberry.input
class ReferralFilter:
    status: list[ReferralStatus] | None = None
    to_unit: relay.GlobalID | None = None


@strawberry.input
class UnitFilter:
    kind: list[UnitKind] | None = None
    parent: relay.GlobalID | None = None


def _dir(direction: OrderDirection) -> bool:
    return direction is OrderDirection.DESC


@strawberry.type(description="What an exact lookup may show of a person outside your relations.")
class PersonBasic:
    masked_name: str | None
    gender: Gender | None
    age_band: str | None
    _residence_unit_id: strawberry.Private[int | None]

    @strawberry.field
    async def residence_unit(self, info: strawberry.Info) -> UnitType | None:
        return await load_one(info, UnitType, self._residence_unit_id)


@strawberry.type(description="One result of an exact lookup.")
class PersonMatch:
    in_scope: bool = strawberry.field(description="Whether the person is within your relations.")
    basic: PersonBasic
    person: PersonType | None = strawberry.field(
        description="The full record as you may see it; null when outside your relations."
    )


@strawberry.input(description="Auditors' filters over the access log; all are ANDed.")
class AccessEventFilter:
    actor: str | None = strawberry.field(default=None, description="Actor username.")
    actor_unit: relay.GlobalID | None = None
    person: relay.GlobalID | None = strawberry.field(
        default=None, description="Events about this person's records."
    )
    entity: str | None = None
    kind: str | None = None
    purpose: str | None = None
    outcome: str | None = None
    break_glass: bool | None = None
    operation: str | None = None
    since: datetime.datetime | None = None
    until: datetime.datetime | None = None


@strawberry.input
class FollowUpFilter:
    overdue: bool | None = strawberry.field(default=None, description="Due before now.")
    mine: bool | None = strawberry.field(default=None, description="Assigned to you.")


@strawberry.input
class EmergencyAccessFilter:
    unreviewed: bool | None = None


@strawberry.type
class Query:
    @strawberry.field(
        description="Any object by its global ID; null if missing or not yours to see."
    )
    async def node(self, info: strawberry.Info, id: relay.GlobalID) -> relay.Node | None:
        return (await _nodes(info, [id]))[0]

    @strawberry.field(description="Several objects by global ID, in order; null where not visible.")
    async def nodes(
        self, info: strawberry.Info, ids: list[relay.GlobalID]
    ) -> list[relay.Node | None]:
        if len(ids) > ctx(info).settings.max_page_size:
            raise DomainError(ErrorCode.INVALID, "一次最多查询100个ID", ("ids",))
        return await _nodes(info, ids)

    @strawberry.field(description="The signed-in account.")
    async def viewer(self, info: strawberry.Info) -> Viewer:
        c = ctx(info)
        gate = c.gate
        staff = await load_one(info, StaffType, gate.subject.staff_id, ("staff",))
        unit = await load_one(info, UnitType, gate.subject.unit_id, ("unit",))
        return Viewer(staff=staff, roles=sorted(gate.subject.roles), unit=unit)

    @strawberry.field
    async def persons(
        self,
        info: strawberry.Info,
        first: int | None = None,
        after: str | None = None,
        filter: PersonFilter | None = None,
        order_by: PersonOrder | None = None,
    ) -> Connection[PersonType]:
        f = filter or PersonFilter()
        o = order_by or PersonOrder()
        filters = [
            *_eq(
                m.Person.residence_unit_id,
                _unit_id(f.residence_unit, "residenceUnit"),
                "residenceUnit",
            ),
            *_eq(m.Person.school_unit_id, _unit_id(f.school, "school"), "school"),
            *_eq(m.Person.gender, f.gender, "gender"),
            *_blind(
                info, m.Person.id_number_index, "id_number", _id_number(f.id_number), "idNumber"
            ),
        ]
        order = Order(getattr(m.Person, o.field.value), _dir(o.direction), order_by is None)
        return await _connection(
            info, PersonType, order=order, first=first, after=after, filters=filters
        )

    @strawberry.field
    async def families(
        self,
        info: strawberry.Info,
        first: int | None = None,
        after: str | None = None,
        filter: FamilyFilter | None = None,
    ) -> Connection[FamilyType]:
        f = filter or FamilyFilter()
        filters = [
            *_eq(
                m.Family.residence_unit_id,
                _unit_id(f.residence_unit, "residenceUnit"),
                "residenceUnit",
            ),
            *_eq(m.Family.special_type, f.special_type, "specialType"),
        ]
        order = Order(m.Family.created_at, descending=True, default=True)
        return await _connection(
            info, FamilyType, order=order, first=first, after=after, filters=filters
        )

    @strawberry.field
    async def cases(
        self,
        info: strawberry.Info,
        first: int | None = None,
        after: str | None = None,
        filter: CaseFilter | None = None,
        order_by: CaseOrder | None = None,
    ) -> Connection[CaseType]:
        f = filter or CaseFilter()
        filters = [
            *_in(m.Case.status, f.status, "status"),
            *_in(m.Case.risk_level, f.risk_level, "riskLevel"),
            *_eq(m.Case.lead_unit_id, _unit_id(f.lead_unit, "leadUnit"), "leadUnit"),
            *_eq(m.Case.area_unit_id, _unit_id(f.area_unit, "areaUnit"), "areaUnit"),
        ]
        if f.opened_after:
            filters.append(Filter(m.Case.opened_at, "gte", f.opened_after, "openedAfter"))
        if f.opened_before:
            filters.append(Filter(m.Case.opened_at, "lt", f.opened_before, "openedBefore"))
        order = Order(m.Case.opened_at, _dir((order_by or CaseOrder()).direction), order_by is None)
        return await _connection(
            info, CaseType, order=order, first=first, after=after, filters=filters
        )

    @strawberry.field
    async def interventions(
        self,
        info: strawberry.Info,
        first: int | None = None,
        after: str | None = None,
        filter: InterventionFilter | None = None,
    ) -> Connection[InterventionType]:
        f = filter or InterventionFilter()
        filters = [*_in(m.Intervention.kind, f.kind, "kind")]
        if f.performed_after:
            filters.append(
                Filter(m.Intervention.performed_at, "gte", f.performed_after, "performedAfter")
            )
        order = Order(m.Intervention.performed_at, descending=True, default=True)
        return await _connection(
            info, InterventionType, order=order, first=first, after=after, filters=filters
        )

    @strawberry.field
    async def alerts(
        self,
        info: strawberry.Info,
        first: int | None = None,
        after: str | None = None,
        filter: AlertFilter | None = None,
        order_by: AlertOrder | None = None,
    ) -> Connection[AlertType]:
        f = filter or AlertFilter()
        o = order_by or AlertOrder()
        filters = [
            *_in(m.Alert.status, f.status, "status"),
            *_in(m.Alert.risk_level, f.risk_level, "riskLevel"),
            *_eq(m.Alert.target_unit_id, _unit_id(f.target_unit, "targetUnit"), "targetUnit"),
        ]
        order = Order(getattr(m.Alert, o.field.value), _dir(o.direction), order_by is None)
        return await _connection(
            info, AlertType, order=order, first=first, after=after, filters=filters
        )

    @strawberry.field
    async def referrals(
        self,
        info: strawberry.Info,
        first: int | None = None,
        after: str | None = None,
        filter: ReferralFilter | None = None,
    ) -> Connection[ReferralType]:
        f = filter or ReferralFilter()
        filters = [
            *_in(m.Referral.status, f.status, "status"),
            *_eq(m.Referral.to_unit_id, _unit_id(f.to_unit, "toUnit"), "toUnit"),
        ]
        order = Order(m.Referral.created_at, descending=True, default=True)
        return await _connection(
            info, ReferralType, order=order, first=first, after=after, filters=filters
        )

    @strawberry.field(
        description=(
            "Exact lookup by resident ID number or mobile phone, to avoid duplicates at intake. "
            "May confirm that a person exists outside your relations (basic fields only); "
            "rate limited and logged as a search."
        )
    )
    async def lookup_persons(
        self, info: strawberry.Info, id_number: str | None = None, phone: str | None = None
    ) -> list[PersonMatch]:
        c = ctx(info)
        gate = c.gate
        if (id_number is None) == (phone is None):
            raise DomainError(
                ErrorCode.INVALID, "须且只能提供身份证号码或手机号码之一", ("idNumber",)
            )
        try:
            number = ResidentId.parse(id_number).value if id_number is not None else None
            mobile = MobilePhone.parse(phone).value if phone is not None else None
        except DomainError as e:
            raise e.at("idNumber" if id_number is not None else "phone") from None
        if c.lookup_limiter is not None and not c.lookup_limiter.hit(gate.subject.staff_id):
            raise DomainError(ErrorCode.RATE_LIMITED, "查询过于频繁，请稍后再试")
        hits = await intake.lookup_persons(gate, id_number=number, phone=mobile)
        names = requested(info, ("person",))
        return [
            PersonMatch(
                in_scope=hit.visible is not None,
                basic=PersonBasic(
                    masked_name=hit.basic["masked_name"],
                    gender=hit.basic["gender"],
                    age_band=hit.basic["age_band"],
                    _residence_unit_id=hit.basic["residence_unit_id"],
                ),
                person=None
                if hit.visible is None
                else PersonType.from_names(hit.visible, info, names),
            )
            for hit in hits
        ]

    @strawberry.field(
        description="Break-glass grants: all of them for auditors, your own otherwise."
    )
    async def emergency_accesses(
        self,
        info: strawberry.Info,
        first: int | None = None,
        after: str | None = None,
        filter: EmergencyAccessFilter | None = None,
    ) -> Connection[EmergencyAccessType]:
        f = filter or EmergencyAccessFilter()
        filters: list[Filter] = []
        if f.unreviewed is not None:
            op = "is_null" if f.unreviewed else "is_not_null"
            filters.append(Filter(m.EmergencyGrant.reviewed_at, op, None, "unreviewed"))
        order = Order(m.EmergencyGrant.granted_at, descending=True, default=True)
        return await _connection(
            info, EmergencyAccessType, order=order, first=first, after=after, filters=filters
        )

    @strawberry.field(description="The access log, newest first (auditors). Reading it is logged.")
    async def access_events(
        self,
        info: strawberry.Info,
        first: int | None = None,
        after: str | None = None,
        filter: AccessEventFilter | None = None,
    ) -> Connection[AccessEventType]:
        f = filter or AccessEventFilter()
        e = m.AccessEvent
        person = None if f.person is None else ids.decode(f.person, "Person", "person")[1]
        filters = [
            *_eq(e.actor_username, f.actor, "actor"),
            *_eq(e.actor_unit_id, _unit_id(f.actor_unit, "actorUnit"), "actorUnit"),
            *_eq(e.person_id, person, "person"),
            *_eq(e.entity, f.entity, "entity"),
            *_eq(e.kind, f.kind, "kind"),
            *_eq(e.purpose, f.purpose, "purpose"),
            *_eq(e.outcome, f.outcome, "outcome"),
            *_eq(e.break_glass, f.break_glass, "breakGlass"),
            *_eq(e.operation, f.operation, "operation"),
        ]
        if f.since:
            filters.append(Filter(e.occurred_at, "gte", f.since, "since"))
        if f.until:
            filters.append(Filter(e.occurred_at, "lt", f.until, "until"))
        order = Order(e.seq, descending=True, default=True)
        return await _connection(
            info, AccessEventType, order=order, first=first, after=after, filters=filters
        )

    @strawberry.field(
        description="Who saw this person's records, when, why and under which relation (for "
        "data-subject requests under PIPL). Auditors only; reading it is logged."
    )
    async def person_access_history(
        self,
        info: strawberry.Info,
        person: relay.GlobalID,
        first: int | None = None,
        after: str | None = None,
    ) -> Connection[AccessEventType]:
        number = ids.decode(person, "Person", "person")[1]
        filters = [Filter(m.AccessEvent.person_id, "eq", number, "person")]
        order = Order(m.AccessEvent.seq, descending=True, default=True)
        return await _connection(
            info, AccessEventType, order=order, first=first, after=after, filters=filters
        )

    @strawberry.field(description="Open follow-ups you may see, soonest first (due / overdue).")
    async def due_follow_ups(
        self,
        info: strawberry.Info,
        first: int | None = None,
        after: str | None = None,
        filter: FollowUpFilter | None = None,
    ) -> Connection[FollowUpType]:
        f = filter or FollowUpFilter()
        gate = ctx(info).gate
        filters = [Filter(m.FollowUp.done_at, "is_null", None, "done")]
        if f.overdue:
            filters.append(Filter(m.FollowUp.due_at, "lt", gate.now, "overdue"))
        if f.mine:
            filters.append(
                Filter(m.FollowUp.assigned_staff_id, "eq", gate.subject.staff_id, "mine")
            )
        order = Order(m.FollowUp.due_at, default=True)
        return await _connection(
            info, FollowUpType, order=order, first=first, after=after, filters=filters
        )

    @strawberry.field(description="School screening campaigns you may see, newest first.")
    async def screening_campaigns(
        self, info: strawberry.Info, first: int | None = None, after: str | None = None
    ) -> Connection[ScreeningCampaignType]:
        order = Order(m.ScreeningCampaign.created_at, descending=True, default=True)
        return await _connection(
            info, ScreeningCampaignType, order=order, first=first, after=after, filters=()
        )

    @strawberry.field(description="A campaign's results you may see (your own school's).")
    async def screening_results(
        self,
        info: strawberry.Info,
        campaign: relay.GlobalID,
        first: int | None = None,
        after: str | None = None,
        flagged_only: bool = False,
    ) -> Connection[AssessmentType]:
        number = ids.decode(campaign, "ScreeningCampaign", "campaign")[1]
        filters = [Filter(m.Assessment.campaign_id, "eq", number, "campaign")]
        if flagged_only:
            filters.append(Filter(m.Assessment.flagged, "eq", True, "flaggedOnly"))
        order = Order(m.Assessment.id, default=True)
        return await _connection(
            info, AssessmentType, order=order, first=first, after=after, filters=filters
        )

    @strawberry.field(description="Partner agencies' API clients (administrators).")
    async def partner_clients(
        self, info: strawberry.Info, first: int | None = None, after: str | None = None
    ) -> Connection[PartnerClientType]:
        order = Order(m.PartnerClient.created_at, descending=True, default=True)
        return await _connection(
            info, PartnerClientType, order=order, first=first, after=after, filters=()
        )

    @strawberry.field
    async def units(
        self,
        info: strawberry.Info,
        first: int | None = None,
        after: str | None = None,
        filter: UnitFilter | None = None,
    ) -> Connection[UnitType]:
        f = filter or UnitFilter()
        filters = [
            *_in(m.Unit.kind, f.kind, "kind"),
            *_eq(m.Unit.parent_id, _unit_id(f.parent, "parent"), "parent"),
        ]
        order = Order(m.Unit.name, default=True)
        return await _connection(
            info, UnitType, order=order, first=first, after=after, filters=filters
        )


async def _nodes(info: strawberry.Info, raw_ids: Sequence[relay.GlobalID]) -> list[Any]:
    """Resolve global IDs through the loaders. An unknown type name, like a missing or hidden
    record, is just null: the answer never tells which."""
    ctx(info).gate  # noqa: B018 - authentication check before anything else
    decoded = [ids.decode(raw, field="id") for raw in raw_ids]
    return list(
        await asyncio.gather(
            *(
                load_one(info, NODE_TYPES[name], number) if name in NODE_TYPES else _none()
                for name, number in decoded
            )
        )
    )


async def _none() -> None:
    return None
