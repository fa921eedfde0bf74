"""School screening: a counsellor opens a campaign and imports its results as one CSV.

The import is all or nothing. Every row is checked (shape, ID number, grade, class, answers, a
student of the importer's own school, not already in the campaign) and every problem is reported
with its line; if there is any, nothing is written. Students at or above the threshold, or with a
self-harm answer, become alerts for the school.
"""

from __future__ import annotations

from datetime import timedelta

import strawberry
from strawberry import relay

from api.graphql import ids
from api.graphql.errors import UserError
from api.graphql.mutations.base import collect, reload, run
from api.graphql.mutations.persons import _text
from api.graphql.types.base import ctx
from api.graphql.types.enums import Instrument
from api.graphql.types.screening import ScreeningCampaignType
from authz.entities import Entity
from authz.gate import Forbidden, Gate, Order, Visible
from authz.relations import Relation
from domain import models as m
from domain.alerts import AlertStatus
from domain.cases import RiskLevel, SourceChannel
from domain.errors import DomainError, ErrorCode
from domain.screening import MAX_ROWS, RowError, ScreeningRow, check_threshold, parse_csv
from domain.units import UnitKind

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


def _flagged(row: ScreeningRow, threshold: int) -> bool:
    return row.result.score >= threshold or row.result.self_harm


async def _check_rows(
    gate: Gate, campaign: Visible[m.ScreeningCampaign], rows: list[ScreeningRow]
) -> tuple[dict[str, int], list[RowError]]:
    """Match rows to the importer's own students and refuse students already in the campaign."""
    students = await gate.lookup_students([r.id_number for r in rows])
    done = await gate.children(
        m.Assessment,
        m.Assessment.campaign_id,
        [campaign.row.id],
        order=Order(m.Assessment.id),
        limit=MAX_ROWS * 20,
    )
    already = {v.row.person_id for v in done.get(campaign.row.id, [])}
    errors: list[RowError] = []
    for row in rows:
        person_id = students.get(row.id_number)
        if person_id is None:
            errors.append(
                RowError(row.line, "id_number", ErrorCode.NOT_FOUND, "本校学生中没有该身份证号")
            )
        elif person_id in already:
            errors.append(
                RowError(row.line, "id_number", ErrorCode.DUPLICATE, "该学生已在本次筛查中导入")
            )
    return students, errors


def _alert(
    row: ScreeningRow,
    person_id: int,
    campaign: m.ScreeningCampaign,
    gate: Gate,
    deadlines: dict[RiskLevel, timedelta],
) -> m.Alert:
    risk = RiskLevel.HIGH if row.result.self_harm else RiskLevel.MEDIUM
    summary = (
        "心理筛查作答提示自伤风险，请立即跟进"
        if row.result.self_harm
        else f"心理筛查得分达到阈值（{campaign.instrument.value} ≥ {campaign.threshold}），请评估"
    )
    return m.Alert(
        person_id=person_id,
        case_id=None,
        channel=SourceChannel.SCHOOL_SCREENING,
        risk_level=risk,
        summary=summary,
        status=AlertStatus.OPEN,
        area_unit_id=campaign.school_unit_id,
        target_unit_id=campaign.school_unit_id,
        raised_at=gate.now,
        routed_at=gate.now,
        ack_deadline=gate.now + deadlines[risk],
        created_by_staff_id=gate.subject.staff_id,
    )


@strawberry.type
class ScreeningMutations:
    @strawberry.mutation(description="Open a screening campaign for your school.")
    async def create_screening_campaign(
        self, info: strawberry.Info, input: CreateScreeningCampaignInput
    ) -> ScreeningCampaignPayload:
        async def action(gate: Gate) -> int:
            name, threshold = collect(
                lambda: _text(input.name, 100, "name", required=True),
                lambda: check_threshold(input.instrument, input.threshold),
            )
            school_id = gate.subject.unit_id
            school = None if school_id is None else await gate.unit(school_id)
            if school is None or school.kind != UnitKind.SCHOOL:
                raise Forbidden("只有学校可以发起心理筛查")
            relations = await gate.new_record_relations(
                area_unit_id=school.id, school_unit_id=school.id
            )
            gate.authorize(Entity.SCREENING_CAMPAIGN, "create", relations)
            campaign = m.ScreeningCampaign(
                school_unit_id=school.id,
                name=name,
                instrument=input.instrument,
                threshold=threshold,
                created_at=gate.now,
                created_by_staff_id=gate.subject.staff_id,
            )
            return await gate.insert(campaign, ["name", "instrument", "threshold"])

        campaign_id, errors = await run(info, action)
        return ScreeningCampaignPayload(
            campaign=await reload(info, ScreeningCampaignType, campaign_id, "campaign"),
            errors=errors,
        )

    @strawberry.mutation(
        description="Import a campaign's results from CSV: all rows or none. Every problem is "
        "reported with its line; students over the threshold become alerts for your school."
    )
    async def import_screening_results(
        self, info: strawberry.Info, input: ImportScreeningResultsInput
    ) -> ImportScreeningResultsPayload:
        row_errors: list[RowError] = []
        counts = {"rows": 0, "imported": 0, "flagged": 0, "alerts": 0}

        async def action(gate: Gate) -> int:
            number = ids.decode(input.campaign, "ScreeningCampaign", "campaign")[1]
            visible = await gate.for_write(m.ScreeningCampaign, number, "update")
            campaign = visible.row
            parsed = parse_csv(input.csv, campaign.instrument, today=gate.now.date())
            row_errors.extend(parsed.errors)
            students, problems = await _check_rows(gate, visible, parsed.rows)
            row_errors.extend(problems)
            row_errors.sort(key=lambda e: (e.line, e.column or ""))
            counts["rows"] = len(parsed.rows)
            flagged = [r for r in parsed.rows if _flagged(r, campaign.threshold)]
            counts["flagged"] = len(flagged)
            if row_errors:
                raise DomainError(
                    ErrorCode.INVALID,
                    f"文件中有{len(row_errors)}处问题，未导入任何数据；请改正后重新导入",
                    ("csv",),
                )
            if input.dry_run:
                return number
            gate.authorize(Entity.ASSESSMENT, "create", {Relation.SCHOOL})
            persons = [students[r.id_number] for r in parsed.rows]
            assessments = [
                m.Assessment(
                    person_id=person_id,
                    campaign_id=campaign.id,
                    instrument=campaign.instrument,
                    answers=r.answers,
                    score=r.result.score,
                    severity=r.result.severity,
                    grade=r.grade,
                    class_name=r.class_name,
                    flagged=_flagged(r, campaign.threshold),
                    administered_at=gate.now,
                    staff_id=gate.subject.staff_id,
                )
                for r, person_id in zip(parsed.rows, persons, strict=True)
            ]
            await gate.insert_many(assessments, ASSESSMENT_FIELDS, "screening_import", persons)
            counts["imported"] = len(assessments)
            if flagged:
                gate.authorize(Entity.ALERT, "create", {Relation.SCHOOL})
                alert_persons = [students[r.id_number] for r in flagged]
                alerts = [
                    _alert(r, p, campaign, gate, ctx(info).settings.ack_deadlines)
                    for r, p in zip(flagged, alert_persons, strict=True)
                ]
                await gate.insert_many(
                    alerts, ("risk_level", "summary"), "screening_rule", alert_persons
                )
                counts["alerts"] = len(alerts)
            return number

        campaign_id, errors = await run(info, action)
        if errors:
            counts["imported"] = counts["alerts"] = 0
        return ImportScreeningResultsPayload(
            campaign=await reload(info, ScreeningCampaignType, campaign_id, "campaign"),
            dry_run=input.dry_run,
            rows=counts["rows"],
            imported=counts["imported"],
            flagged=counts["flagged"],
            alerts_raised=counts["alerts"],
            row_errors=[
                ScreeningRowError(line=e.line, column=e.column, code=e.code, message=e.message)
                for e in row_errors
            ],
            errors=errors,
        )
