"""Partner agencies' API clients, as administrators see them (never their secrets)."""

import datetime
from typing import Any, ClassVar

import strawberry
from strawberry import relay

from api.graphql.types.base import REDACTED_DOC, Gated, load_one
from api.graphql.types.units import UnitType
from authz.gate import Visible
from domain import models as m


@strawberry.type(name="PartnerClient", description="A partner agency's API client.")
class PartnerClientType(relay.Node, Gated):
    model: ClassVar[type[m.Base]] = m.PartnerClient
    links: ClassVar[dict[str, str]] = {"unit": "unit_id"}

    id: relay.NodeID[int]
    client_id: str | None = None
    name: str | None = None
    scopes: list[str] | None = None
    audience: str | None = None
    allowed_addresses: list[str] | None = None
    created_at: datetime.datetime | None = None
    expires_at: datetime.datetime | None = None
    revoked_at: datetime.datetime | None = None
    secret_rotated_at: datetime.datetime | None = None
    redacted_fields: list[str] = strawberry.field(default_factory=list, description=REDACTED_DOC)
    _visible: strawberry.Private[Visible[Any] | None] = None

    @strawberry.field
    async def unit(self, info: strawberry.Info) -> UnitType | None:
        return await load_one(info, UnitType, self.link("unit"))
