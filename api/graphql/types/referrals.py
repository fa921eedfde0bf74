"""Referrals and the consents they rest on."""

import datetime
from typing import Any, ClassVar

import strawberry
from strawberry import relay

from api.graphql.types.base import REDACTED_DOC, Gated, load_one
from api.graphql.types.cases import CaseType
from api.graphql.types.enums import ConsentGiver, ReferralStatus
from api.graphql.types.units import UnitType
from authz.gate import Visible
from domain import models as m


@strawberry.type(name="Consent", description="A recorded consent (知情同意).")
class ConsentType(relay.Node, Gated):
    model: ClassVar[type[m.Base]] = m.Consent
    links: ClassVar[dict[str, str]] = {"recipient_unit": "recipient_unit_id"}

    id: relay.NodeID[int]
    given_by: ConsentGiver | None = None
    purpose: str | None = None
    scope: str | None = None
    given_at: datetime.datetime | None = None
    valid_until: datetime.datetime | None = None
    withdrawn_at: datetime.datetime | None = None
    redacted_fields: list[str] = strawberry.field(default_factory=list, description=REDACTED_DOC)
    _visible: strawberry.Private[Visible[Any] | None] = None

    @strawberry.field
    async def recipient_unit(self, info: strawberry.Info) -> UnitType | None:
        return await load_one(info, UnitType, self.link("recipient_unit"))


@strawberry.type(name="Referral", description="A case offered to another unit (转介).")
class ReferralType(relay.Node, Gated):
    model: ClassVar[type[m.Base]] = m.Referral
    links: ClassVar[dict[str, str]] = {"from_unit": "from_unit_id", "to_unit": "to_unit_id"}

    id: relay.NodeID[int]
    purpose: str | None = None
    shared_classes: str | None = None
    status: ReferralStatus | None = None
    override_reason: str | None = None
    created_at: datetime.datetime | None = None
    responded_at: datetime.datetime | None = None
    expires_at: datetime.datetime | None = None
    redacted_fields: list[str] = strawberry.field(default_factory=list, description=REDACTED_DOC)
    _visible: strawberry.Private[Visible[Any] | None] = None

    @strawberry.field
    async def case(self, info: strawberry.Info) -> CaseType | None:
        assert self._visible is not None
        return await load_one(info, CaseType, self._visible.row.case_id)

    @strawberry.field
    async def from_unit(self, info: strawberry.Info) -> UnitType | None:
        return await load_one(info, UnitType, self.link("from_unit"))

    @strawberry.field
    async def to_unit(self, info: strawberry.Info) -> UnitType | None:
        return await load_one(info, UnitType, self.link("to_unit"))
