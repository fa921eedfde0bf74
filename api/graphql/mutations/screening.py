"""School screening: a counsellor opens a campaign and imports its results as one CSV.

The import is all or nothing. Every row is checked (shape, ID number, grade, class, answers, a
student of the importer's own school, not already in the campaign) and every problem is reported
with its line; if there is any, nothing is written. Students at or above the threshold, or with a
self-harm answer, become alerts for the school.
"""

from __future__ import annotations

import strawberry
from strawberry import relay

from api.graphql import ids
from api.graphql import validators as v
from api.graphql.errors import UserError
from api.graphql.mutations.shell import mutate, reload, run
from api.graphql.types.base import ctx
from api.graphql.types.enums import Instrument
from api.graphql.types.screening import ScreeningCampaignType
from api.graphql.validators import collect
from api.services import screening
from authz.gate import Gate
from domain.errors import ErrorCode
from domain.screening import check_threshold

ASSESSMENT_FIELDS = ("answers", "score", "severity", "grade", "class_name", "flagged")


@strawberry.input
class CreateScreeningCampaignInput:
    name: str
    instrument: Instrument
    threshold: int | None = strawberry.field(
        default=None,
        description="Default: the instrument's published cut-off (PHQ-9 10, GAD-7 10, EPDS 13, "
        "AD8 2).",
    )


@strawberry.type
class ScreeningCampaignPayload:
    campaign: ScreeningCampaignType | None
    errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.input
class ImportScreeningResultsInput:
    campaign: relay.GlobalID
    csv: str = strawberry.field(
        description="UTF-8 text. Header: id_number (身份证号), grade (年级, 1-12), class (班级), "
        "then q1..qN, one column per item of the campaign's instrument."
    )
    dry_run: bool = strawberry.field(
        default=False, description="Check everything and report, write nothing."
    )


@strawberry.type(description="A problem in the file. Line 1 is the header.")
class ScreeningRowError:
    line: int
    column: str | None
    code: ErrorCode
    message: str


@strawberry.type
class ImportScreeningResultsPayload:
    campaign: ScreeningCampaignType | None
    dry_run: bool
    rows: int = strawberry.field(description="Valid rows read (imported unless a dry run).")
    imported: int
    flagged: int = strawberry.field(description="Students at or above the threshold.")
    alerts_raised: int
    row_errors: list[ScreeningRowError] = strawberry.field(
        description="Every problem found, by line; when there is any, nothing was written."
    )
    errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.type
class ScreeningMutations:
    @strawberry.mutation(description="Open a screening campaign for your school.")
    async def create_screening_campaign(
        self, info: strawberry.Info, input: CreateScreeningCampaignInput
    ) -> ScreeningCampaignPayload:
        async def action(gate: Gate) -> int:
            name, threshold = collect(
                lambda: v.text(input.name, 100, "name", required=True),
                lambda: check_threshold(input.instrument, input.threshold),
            )
            return await screening.create_campaign(
                gate, name=name, instrument=input.instrument, threshold=threshold
            )

        return await mutate(
            info, action, ScreeningCampaignPayload, ScreeningCampaignType, "campaign"
        )

    @strawberry.mutation(
        description="Import a campaign's results from CSV: all rows or none. Every problem is "
        "reported with its line; students over the threshold become alerts for your school."
    )
    async def import_screening_results(
        self, info: strawberry.Info, input: ImportScreeningResultsInput
    ) -> ImportScreeningResultsPayload:
        result = screening.ImportResult()

        async def action(gate: Gate) -> int:
            number = ids.decode(input.campaign, "ScreeningCampaign", "campaign")[1]
            return await screening.import_results(
                gate,
                campaign_id=number,
                csv=input.csv,
                dry_run=input.dry_run,
                deadlines=ctx(info).settings.ack_deadlines,
                result=result,
            )

        campaign_id, errors = await run(info, action)
        if errors:
            result.imported = result.alerts = 0
        return ImportScreeningResultsPayload(
            campaign=await reload(info, ScreeningCampaignType, campaign_id, "campaign"),
            dry_run=input.dry_run,
            rows=result.rows,
            imported=result.imported,
            flagged=result.flagged,
            alerts_raised=result.alerts,
            row_errors=[
                ScreeningRowError(line=e.line, column=e.column, code=e.code, message=e.message)
                for e in result.row_errors
            ],
            errors=errors,
        )
