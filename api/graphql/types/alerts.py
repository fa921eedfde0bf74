"""Alerts (预警)."""

import datetime
from typing import Any, ClassVar

import strawberry
from strawberry import relay

from api.graphql.types.base import REDACTED_DOC, Gated, load_one
from api.graphql.types.cases import CaseType
from api.graphql.types.enums import AlertResolution, AlertStatus, RiskLevel, SourceChannel
from api.graphql.types.persons import PersonType
from api.graphql.types.units import UnitType
from authz.gate import Visible
from domain import models as m


@strawberry.type(name="Alert", description="A crisis signal with an acknowledgement deadline.")
class AlertType(relay.Node, Gated):
    model: ClassVar[type[m.Base]] = m.Alert
    links: ClassVar[dict[str, str]] = {"target_unit": "target_unit_id", "area_unit": "area_unit_id"}

    id: relay.NodeID[int]
    channel: SourceChannel | None = None
    risk_level: RiskLevel | None = None
    status: AlertStatus | None = None
    summary: str | None = None
    raised_at: datetime.datetime | None = None
    ack_deadline: datetime.datetime | None = None
    acknowledged_at: datetime.datetime | None = None
    closed_at: datetime.datetime | None = None
    resolution: AlertResolution | None = strawberry.field(
        default=None, description="How it was handled: a case opened from it, or dismissed."
    )
    dismissed_reason: str | None = None
    possible_duplicates: int | None = strawberry.field(
        default=None,
        description="Intake found this many existing persons matching the caller: resolve by hand.",
    )
    redacted_fields: list[str] = strawberry.field(default_factory=list, description=REDACTED_DOC)
    _visible: strawberry.Private[Visible[Any] | None] = None

    @strawberry.field
    async def person(self, info: strawberry.Info) -> PersonType | None:
        assert self._visible is not None
        return await load_one(info, PersonType, self._visible.row.person_id)

    @strawberry.field
    async def case(self, info: strawberry.Info) -> CaseType | None:
        assert self._visible is not None
        return await load_one(info, CaseType, self._visible.row.case_id)

    @strawberry.field(description="The unit that owns the alert now (it must acknowledge it).")
    async def target_unit(self, info: strawberry.Info) -> UnitType | None:
        return await load_one(info, UnitType, self.link("target_unit"))

    @strawberry.field
    async def area_unit(self, info: strawberry.Info) -> UnitType | None:
        return await load_one(info, UnitType, self.link("area_unit"))
