"""Break-glass grants (紧急访问), as auditors and their holders see them."""

import datetime
from typing import Any, ClassVar

import strawberry
from strawberry import relay

from api.graphql.types.base import REDACTED_DOC, Gated, load_one
from api.graphql.types.cases import CaseType
from api.graphql.types.units import StaffType
from authz.gate import Visible
from domain import models as m


@strawberry.type(
    name="EmergencyAccess",
    description="A time-boxed emergency grant on one case; every one is reviewed by an auditor.",
)
class EmergencyAccessType(relay.Node, Gated):
    model: ClassVar[type[m.Base]] = m.EmergencyGrant

    id: relay.NodeID[int]
    reason: str | None = None
    granted_at: datetime.datetime | None = None
    expires_at: datetime.datetime | None = None
    reviewed_at: datetime.datetime | None = None
    review_comment: str | None = None
    redacted_fields: list[str] = strawberry.field(default_factory=list, description=REDACTED_DOC)
    _visible: strawberry.Private[Visible[Any] | None] = None

    @strawberry.field(description="The staff member who broke the glass.")
    async def staff(self, info: strawberry.Info) -> StaffType | None:
        assert self._visible is not None
        return await load_one(info, StaffType, self._visible.row.staff_id)

    @strawberry.field(description="The case, if you may see it (auditors never see case content).")
    async def case(self, info: strawberry.Info) -> CaseType | None:
        assert self._visible is not None
        return await load_one(info, CaseType, self._visible.row.case_id)
