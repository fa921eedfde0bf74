"""Follow-ups of a case's support plan."""

import datetime
from typing import Any, ClassVar

import strawberry
from strawberry import relay

from api.graphql.types.base import REDACTED_DOC, Gated, load_one
from api.graphql.types.cases import CaseType
from api.graphql.types.enums import InterventionKind
from api.graphql.types.units import StaffType
from authz.gate import Visible
from domain import models as m


@strawberry.type(
    name="FollowUp", description="A scheduled contact of a case's support plan (随访)."
)
class FollowUpType(relay.Node, Gated):
    model: ClassVar[type[m.Base]] = m.FollowUp
    links: ClassVar[dict[str, str]] = {"assigned_staff": "assigned_staff_id"}

    id: relay.NodeID[int]
    kind: InterventionKind | None = None
    due_at: datetime.datetime | None = None
    done_at: datetime.datetime | None = None
    dropped_reason: str | None = None
    created_at: datetime.datetime | None = None
    redacted_fields: list[str] = strawberry.field(default_factory=list, description=REDACTED_DOC)
    _visible: strawberry.Private[Visible[Any] | None] = None

    @strawberry.field
    async def case(self, info: strawberry.Info) -> CaseType | None:
        assert self._visible is not None
        return await load_one(info, CaseType, self._visible.row.case_id)

    @strawberry.field
    async def assigned_staff(self, info: strawberry.Info) -> StaffType | None:
        return await load_one(info, StaffType, self.link("assigned_staff"))
