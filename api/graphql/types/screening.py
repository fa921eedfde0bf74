"""School screening campaigns and their suppressed aggregates."""

import datetime
from typing import Any, ClassVar

import strawberry
from strawberry import relay

from api.graphql.types.base import REDACTED_DOC, Gated, ctx, load_one
from api.graphql.types.enums import Instrument
from api.graphql.types.units import UnitType
from api.services import screening
from authz.gate import Visible
from domain import models as m
from domain.screening import Cell, GradeRow


@strawberry.type(description="A count that may be suppressed: small cells never leave the server.")
class CountCell:
    value: int | None = strawberry.field(description="Null when suppressed.")
    display: str = strawberry.field(description='The count, or "<10" when suppressed.')
    suppressed: bool

    @classmethod
    def of(cls, cell: Cell, threshold: int) -> "CountCell":
        if cell.suppressed:
            return cls(value=None, display=f"<{threshold}", suppressed=True)
        return cls(value=cell.count, display=str(cell.count), suppressed=False)


@strawberry.type
class BandCount:
    severity: str
    count: CountCell


@strawberry.type(description="One grade's results (grade null: the whole campaign).")
class GradeAggregate:
    grade: int | None
    screened: CountCell
    flagged: CountCell = strawberry.field(
        description="At or above the campaign's threshold. (Self-harm answers below it raise "
        "alerts but are not counted here: the count itself would disclose them.)"
    )
    bands: list[BandCount]

    @classmethod
    def of(cls, row: GradeRow, threshold: int) -> "GradeAggregate":
        return cls(
            grade=row.grade,
            screened=CountCell.of(row.screened, threshold),
            flagged=CountCell.of(row.flagged, threshold),
            bands=[
                BandCount(severity=b, count=CountCell.of(c, threshold))
                for b, c in row.bands.items()
            ],
        )


@strawberry.type
class ScreeningAggregates:
    grades: list[GradeAggregate]
    total: GradeAggregate
    suppression_threshold: int = strawberry.field(
        description="Counts from 1 to this minus one are suppressed, and enough others that no "
        "suppressed count can be worked out by subtraction."
    )


@strawberry.type(name="ScreeningCampaign", description="A school's screening campaign (心理普查).")
class ScreeningCampaignType(relay.Node, Gated):
    model: ClassVar[type[m.Base]] = m.ScreeningCampaign
    links: ClassVar[dict[str, str]] = {"school": "school_unit_id"}

    id: relay.NodeID[int]
    name: str | None = None
    instrument: Instrument | None = None
    threshold: int | None = strawberry.field(
        default=None, description="Scores at or above this become alerts for the counsellor."
    )
    created_at: datetime.datetime | None = None
    redacted_fields: list[str] = strawberry.field(default_factory=list, description=REDACTED_DOC)
    _visible: strawberry.Private[Visible[Any] | None] = None

    @strawberry.field
    async def school(self, info: strawberry.Info) -> UnitType | None:
        return await load_one(info, UnitType, self.link("school"))

    @strawberry.field(
        description="Per-grade counts with small cells suppressed; no person is identifiable."
    )
    async def aggregates(self, info: strawberry.Info) -> ScreeningAggregates:
        assert self._visible is not None
        context = ctx(info)
        threshold = context.settings.small_cell_threshold
        rows, total = await screening.aggregates(context.gate, self._visible, threshold)
        return ScreeningAggregates(
            grades=[GradeAggregate.of(r, threshold) for r in rows],
            total=GradeAggregate.of(total, threshold),
            suppression_threshold=threshold,
        )
