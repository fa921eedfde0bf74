"""Interventions and assessments recorded on a case."""

import datetime
from typing import Any, ClassVar

import strawberry
from strawberry import relay

from api.graphql.types.base import REDACTED_DOC, Gated, load_one
from api.graphql.types.cases import CaseType
from api.graphql.types.enums import Instrument, InterventionKind
from api.graphql.types.families import FamilyType
from api.graphql.types.persons import PersonType
from api.graphql.types.screening import ScreeningCampaignType
from api.graphql.types.units import StaffType, UnitType
from authz.gate import Visible
from domain import models as m


@strawberry.type(name="Intervention", description="Something done for a case (干预/服务).")
class InterventionType(relay.Node, Gated):
    model: ClassVar[type[m.Base]] = m.Intervention
    links: ClassVar[dict[str, str]] = {"staff": "staff_id", "unit": "unit_id"}

    id: relay.NodeID[int]
    kind: InterventionKind | None = None
    performed_at: datetime.datetime | None = None
    notes: str | None = strawberry.field(default=None, description="Narrative.")
    outcome: str | None = strawberry.field(default=None, description="Narrative.")
    redacted_fields: list[str] = strawberry.field(default_factory=list, description=REDACTED_DOC)
    _visible: strawberry.Private[Visible[Any] | None] = None

    @strawberry.field
    async def case(self, info: strawberry.Info) -> CaseType | None:
        assert self._visible is not None
        return await load_one(info, CaseType, self._visible.row.case_id)

    @strawberry.field(description="For family services without a case.")
    async def family(self, info: strawberry.Info) -> FamilyType | None:
        assert self._visible is not None
        return await load_one(info, FamilyType, self._visible.row.family_id)

    @strawberry.field
    async def staff(self, info: strawberry.Info) -> StaffType | None:
        return await load_one(info, StaffType, self.link("staff"))

    @strawberry.field
    async def unit(self, info: strawberry.Info) -> UnitType | None:
        return await load_one(info, UnitType, self.link("unit"))


@strawberry.type(name="Assessment", description="A standard instrument administered (测评).")
class AssessmentType(relay.Node, Gated):
    model: ClassVar[type[m.Base]] = m.Assessment
    links: ClassVar[dict[str, str]] = {"campaign": "campaign_id"}

    id: relay.NodeID[int]
    instrument: Instrument | None = None
    answers: list[int] | None = None
    score: int | None = None
    severity: str | None = None
    administered_at: datetime.datetime | None = None
    grade: int | None = strawberry.field(default=None, description="Screening results only.")
    class_name: str | None = strawberry.field(default=None, description="Screening results only.")
    flagged: bool | None = strawberry.field(
        default=None,
        description="Screening: at or above the campaign's threshold, or a self-harm answer.",
    )
    redacted_fields: list[str] = strawberry.field(default_factory=list, description=REDACTED_DOC)
    _visible: strawberry.Private[Visible[Any] | None] = None

    @strawberry.field(description="Null for a screening result (it has a campaign instead).")
    async def case(self, info: strawberry.Info) -> CaseType | None:
        assert self._visible is not None
        return await load_one(info, CaseType, self._visible.row.case_id)

    @strawberry.field
    async def person(self, info: strawberry.Info) -> PersonType | None:
        assert self._visible is not None
        return await load_one(info, PersonType, self._visible.row.person_id)

    @strawberry.field
    async def campaign(self, info: strawberry.Info) -> ScreeningCampaignType | None:
        return await load_one(info, ScreeningCampaignType, self.link("campaign"))
