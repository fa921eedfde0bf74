"""Access-log events, as auditors read them (reading them is itself logged)."""

import datetime
from typing import Any, ClassVar

import strawberry
from strawberry import relay
from strawberry.scalars import JSON

from api.graphql.types.base import REDACTED_DOC, Gated, load_one
from api.graphql.types.units import UnitType
from authz.gate import Visible
from domain import models as m


@strawberry.type(
    name="AccessEvent",
    description=(
        "One disclosure (read, search, write, export or denial) of one record: who, what fields "
        "(names, never values), why, under which relation, and the hash chain links."
    ),
)
class AccessEventType(relay.Node, Gated):
    model: ClassVar[type[m.Base]] = m.AccessEvent
    links: ClassVar[dict[str, str]] = {"actor_unit": "actor_unit_id"}

    id: relay.NodeID[int]
    seq: int | None = None
    occurred_at: datetime.datetime | None = None
    request_id: str | None = None
    trace_id: str | None = None
    operation: str | None = None
    operation_hash: str | None = None
    actor_username: str | None = None
    actor_staff_id: int | None = None
    actor_roles: str | None = None
    token_id: str | None = None
    purpose: str | None = None
    kind: str | None = None
    outcome: str | None = None
    entity: str | None = None
    entity_id: int | None = None
    person_id: int | None = strawberry.field(
        default=None, description="The person the record is about (database id)."
    )
    fields: list[str] | None = None
    redacted: list[str] | None = None
    field_classes: list[str] | None = None
    relations: list[str] | None = None
    changes: JSON | None = strawberry.field(
        default=None, description="For writes: field → [before, after] keyed hashes."
    )
    break_glass: bool | None = None
    reason: str | None = None
    client_address: str | None = None
    user_agent: str | None = None
    hash_alg: str | None = None
    prev_hash: str | None = None
    hash: str | None = None
    redacted_fields: list[str] = strawberry.field(default_factory=list, description=REDACTED_DOC)
    _visible: strawberry.Private[Visible[Any] | None] = None

    @strawberry.field
    async def actor_unit(self, info: strawberry.Info) -> UnitType | None:
        return await load_one(info, UnitType, self.link("actor_unit"))
