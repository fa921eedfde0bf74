"""Cases, their team and their history."""

import datetime
from typing import TYPE_CHECKING, Annotated, Any, ClassVar

import strawberry
from strawberry import relay

from api.graphql.types.base import REDACTED_DOC, Gated, load_children, load_one
from api.graphql.types.enums import CaseStatus, RiskLevel, SourceChannel
from api.graphql.types.families import FamilyType
from api.graphql.types.persons import PersonType
from api.graphql.types.units import StaffType, UnitType
from authz.gate import Order, Visible
from domain import models as m

if TYPE_CHECKING:  # resolved by strawberry.lazy at run time (the modules import this one)
    from api.graphql.types.followups import FollowUpType
    from api.graphql.types.interventions import AssessmentType, InterventionType
    from api.graphql.types.referrals import ReferralType

InterventionLazy = Annotated["InterventionType", strawberry.lazy("api.graphql.types.interventions")]
AssessmentLazy = Annotated["AssessmentType", strawberry.lazy("api.graphql.types.interventions")]
ReferralLazy = Annotated["ReferralType", strawberry.lazy("api.graphql.types.referrals")]
FollowUpLazy = Annotated["FollowUpType", strawberry.lazy("api.graphql.types.followups")]


@strawberry.type(name="Case", description="A case (个案).")
class CaseType(relay.Node, Gated):
    model: ClassVar[type[m.Base]] = m.Case
    links: ClassVar[dict[str, str]] = {"lead_unit": "lead_unit_id", "area_unit": "area_unit_id"}

    id: relay.NodeID[int]
    status: CaseStatus | None = None
    risk_level: RiskLevel | None = None
    source_channel: SourceChannel | None = None
    opened_at: datetime.datetime | None = None
    closed_at: datetime.datetime | None = None
    presenting_problem: str | None = None
    support_plan: str | None = None
    closure_outcome: str | None = None
    diagnosis: str | None = strawberry.field(default=None, description="Clinical.")
    redacted_fields: list[str] = strawberry.field(default_factory=list, description=REDACTED_DOC)
    _visible: strawberry.Private[Visible[Any] | None] = None

    @strawberry.field(description="The person the case is about, if you may see them.")
    async def subject(self, info: strawberry.Info) -> PersonType | None:
        assert self._visible is not None
        return await load_one(info, PersonType, self._visible.row.subject_id)

    @strawberry.field
    async def family(self, info: strawberry.Info) -> FamilyType | None:
        assert self._visible is not None
        return await load_one(info, FamilyType, self._visible.row.family_id)

    @strawberry.field
    async def lead_unit(self, info: strawberry.Info) -> UnitType | None:
        return await load_one(info, UnitType, self.link("lead_unit"))

    @strawberry.field(description="The community the case belongs to.")
    async def area_unit(self, info: strawberry.Info) -> UnitType | None:
        return await load_one(info, UnitType, self.link("area_unit"))

    @strawberry.field(description="Workers currently or formerly assigned.")
    async def assignments(self, info: strawberry.Info, first: int = 20) -> list["AssignmentType"]:
        order = Order(m.CaseAssignment.id)
        return await load_children(
            info, AssignmentType, m.CaseAssignment.case_id, self.id, order, first
        )

    @strawberry.field(description="Interventions, newest first.")
    async def interventions(self, info: strawberry.Info, first: int = 20) -> list[InterventionLazy]:
        from api.graphql.types.interventions import InterventionType

        order = Order(m.Intervention.performed_at, descending=True)
        return await load_children(
            info, InterventionType, m.Intervention.case_id, self.id, order, first
        )

    @strawberry.field(description="Assessments, newest first.")
    async def assessments(self, info: strawberry.Info, first: int = 20) -> list[AssessmentLazy]:
        from api.graphql.types.interventions import AssessmentType

        order = Order(m.Assessment.administered_at, descending=True)
        return await load_children(
            info, AssessmentType, m.Assessment.case_id, self.id, order, first
        )

    @strawberry.field(description="Referrals of this case, newest first.")
    async def referrals(self, info: strawberry.Info, first: int = 20) -> list[ReferralLazy]:
        from api.graphql.types.referrals import ReferralType

        order = Order(m.Referral.created_at, descending=True)
        return await load_children(info, ReferralType, m.Referral.case_id, self.id, order, first)

    @strawberry.field(description="Follow-ups of the support plan, soonest first.")
    async def follow_ups(self, info: strawberry.Info, first: int = 20) -> list[FollowUpLazy]:
        from api.graphql.types.followups import FollowUpType

        order = Order(m.FollowUp.due_at)
        return await load_children(info, FollowUpType, m.FollowUp.case_id, self.id, order, first)

    @strawberry.field(description="Status history, oldest first.")
    async def status_history(
        self, info: strawberry.Info, first: int = 50
    ) -> list["StatusChangeType"]:
        order = Order(m.CaseStatusChange.id)
        return await load_children(
            info, StatusChangeType, m.CaseStatusChange.case_id, self.id, order, first
        )


@strawberry.type(name="CaseAssignment", description="A worker on a case.")
class AssignmentType(relay.Node, Gated):
    model: ClassVar[type[m.Base]] = m.CaseAssignment
    links: ClassVar[dict[str, str]] = {"staff": "staff_id"}

    id: relay.NodeID[int]
    assigned_at: datetime.datetime | None = None
    ended_at: datetime.datetime | None = None
    redacted_fields: list[str] = strawberry.field(default_factory=list, description=REDACTED_DOC)
    _visible: strawberry.Private[Visible[Any] | None] = None

    @strawberry.field
    async def staff(self, info: strawberry.Info) -> StaffType | None:
        return await load_one(info, StaffType, self.link("staff"))


@strawberry.type(name="CaseStatusChange", description="One step of a case's status history.")
class StatusChangeType(relay.Node, Gated):
    model: ClassVar[type[m.Base]] = m.CaseStatusChange

    id: relay.NodeID[int]
    from_status: CaseStatus | None = None
    to_status: CaseStatus | None = None
    changed_at: datetime.datetime | None = None
    reason: str | None = None
    redacted_fields: list[str] = strawberry.field(default_factory=list, description=REDACTED_DOC)
    _visible: strawberry.Private[Visible[Any] | None] = None
