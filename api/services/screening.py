"""School screening: a counsellor opens a campaign, imports its results as one CSV (all rows or
none), students over the threshold become alerts for the school, and leaders read per-grade
counts with small cells suppressed."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta

from sqlalchemy import func, select

from api.services.notify import enqueue_for_alerts
from authz.actions import Action
from authz.entities import Entity
from authz.gate import Forbidden, Gate, Order, Visible
from authz.relations import Relation
from domain import models as m
from domain.assessments import Instrument
from domain.cases import RiskLevel, SourceChannel
from domain.classification import FieldClass
from domain.errors import DomainError, ErrorCode
from domain.instruments import DEFINITIONS
from domain.screening import (
    MAX_ROWS,
    BandSpan,
    GradeRow,
    RowError,
    ScreeningRow,
    Tally,
    parse_csv,
    suppressed_table,
)
from domain.units import UnitKind

ASSESSMENT_FIELDS = ("answers", "score", "severity", "grade", "class_name", "flagged")


async def create_campaign(gate: Gate, *, name: str, instrument: Instrument, threshold: int) -> int:
    """A campaign for the subject's own school."""
    me = gate.staff()
    school = await gate.unit(me.unit_id)
    if school is None or school.kind != UnitKind.SCHOOL:
        raise Forbidden("只有学校可以发起心理筛查")
    relations = await gate.new_record_relations(area_unit_id=school.id, school_unit_id=school.id)
    permit = gate.authorize(Entity.SCREENING_CAMPAIGN, Action.CREATE, relations)
    campaign = m.ScreeningCampaign(
        school_unit_id=school.id,
        name=name,
        instrument=instrument,
        threshold=threshold,
        created_at=gate.now,
        created_by_staff_id=me.id,
    )
    return await gate.insert(permit, campaign, ["name", "instrument", "threshold"])


@dataclass
class ImportResult:
    rows: int = 0
    imported: int = 0
    flagged: int = 0
    alerts: int = 0
    row_errors: list[RowError] = field(default_factory=list)


async def import_results(
    gate: Gate,
    *,
    campaign_id: int,
    csv: str,
    dry_run: bool,
    deadlines: dict[RiskLevel, timedelta],
    result: ImportResult,
) -> int:
    """Check every row (shape, ID number, grade, class, answers, a student of the importer's
    own school, not already in the campaign) and report every problem with its line; if there
    is any, nothing is written. ``result`` is filled in as it goes (also on failure)."""
    target = await gate.for_write(m.ScreeningCampaign, campaign_id)
    campaign = target.row
    parsed = parse_csv(csv, campaign.instrument, today=gate.now.date())
    result.row_errors.extend(parsed.errors)
    students, problems = await _check_rows(gate, target.visible, parsed.rows)
    result.row_errors.extend(problems)
    result.row_errors.sort(key=lambda e: (e.line, e.column or ""))
    result.rows = len(parsed.rows)
    flagged = [r for r in parsed.rows if _flagged(r, campaign.threshold)]
    result.flagged = len(flagged)
    if result.row_errors:
        raise DomainError(
            ErrorCode.INVALID,
            f"文件中有{len(result.row_errors)}处问题，未导入任何数据；请改正后重新导入",
            ("csv",),
        )
    if dry_run:
        return campaign_id
    permit = gate.authorize(Entity.ASSESSMENT, Action.CREATE, {Relation.SCHOOL})
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
    await gate.insert_many(permit, assessments, ASSESSMENT_FIELDS, "screening_import", persons)
    result.imported = len(assessments)
    if flagged:
        alert_permit = gate.authorize(Entity.ALERT, Action.CREATE, {Relation.SCHOOL})
        alert_persons = [students[r.id_number] for r in flagged]
        alerts = [
            _alert(gate, r, p, campaign, deadlines)
            for r, p in zip(flagged, alert_persons, strict=True)
        ]
        fields = ("risk_level", "summary")
        await gate.insert_many(alert_permit, alerts, fields, "screening_rule", alert_persons)
        await enqueue_for_alerts(gate, alert_permit, alerts)
        result.alerts = len(alerts)
    return campaign_id


def _flagged(row: ScreeningRow, threshold: int) -> bool:
    return row.result.score >= threshold or row.result.self_harm


async def _check_rows(
    gate: Gate, campaign: Visible[m.ScreeningCampaign], rows: list[ScreeningRow]
) -> tuple[dict[str, int], list[RowError]]:
    """Match rows to the importer's own students and refuse students already in the campaign."""
    students = await lookup_students(gate, [r.id_number for r in rows])
    a = m.Assessment
    done = await gate.children(
        a, a.campaign_id, [campaign.row.id], order=Order(a.id), limit=MAX_ROWS * 20
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


async def lookup_students(gate: Gate, id_numbers: Sequence[str]) -> dict[str, int]:
    """ID number → person, for students of the subject's own school only. A number that
    belongs to another school's student, or to nobody, is simply absent: the importer learns
    nothing about persons outside their school. Each hit is logged as a search."""
    permit = gate.authorize(Entity.PERSON, Action.SEARCH, {Relation.DIRECTORY})
    school = gate.subject.unit_id
    if school is None or not id_numbers:
        return {}
    found: dict[str, int] = {}
    by_index = {gate.blind("id_number", n): n for n in set(id_numbers)}
    indexes = sorted(by_index)
    p = m.Person
    for start in range(0, len(indexes), 500):  # bound the IN list on every backend
        match = p.id_number_index.in_(indexes[start : start + 500]) & (p.school_unit_id == school)
        hits = await gate.search(
            permit,
            p,
            match,
            shown=("id",),
            reason="screening_import_match",
            limit=100_000,  # no real cap: every student sharing a number must be seen
            relations=(Relation.SCHOOL.value,),
        )
        found.update({by_index[h.row.id_number_index]: h.id for h in hits})
    return found


def _alert(
    gate: Gate,
    row: ScreeningRow,
    person_id: int,
    campaign: m.ScreeningCampaign,
    deadlines: dict[RiskLevel, timedelta],
) -> m.Alert:
    risk = RiskLevel.HIGH if row.result.self_harm else RiskLevel.MEDIUM
    summary = (
        "心理筛查作答提示自伤风险，请立即跟进"
        if row.result.self_harm
        else f"心理筛查得分达到阈值（{campaign.instrument.value} ≥ {campaign.threshold}），请评估"
    )
    return m.Alert.raised(
        person_id=person_id,
        channel=SourceChannel.SCHOOL_SCREENING,
        risk=risk,
        summary=summary,
        area_unit_id=campaign.school_unit_id,
        owner_unit_id=campaign.school_unit_id,
        at=gate.now,
        within=deadlines[risk],
        staff_id=gate.subject.staff_id,
    )


async def aggregates(
    gate: Gate, campaign: Visible[m.ScreeningCampaign], small_cell: int
) -> tuple[list[GradeRow], GradeRow]:
    """A campaign's per-grade counts, for a subject who may read its statistics: counted over
    every result (rows the subject could never see), so they leave only suppressed
    (``domain.screening.suppressed_table``). No person is named; logged as a campaign read."""
    a = m.Assessment
    row = campaign.row
    over = (a.score >= row.threshold).label("over")
    stmt = (
        select(a.grade, a.severity, over, func.count())
        .where(a.campaign_id == row.id)
        .group_by(a.grade, a.severity, over)
    )
    counted = await gate.aggregate(campaign, FieldClass.CASE_ADMIN, stmt)
    tallies = [Tally(grade or 0, band, bool(hit), int(n)) for grade, band, hit, n in counted]
    bands = [BandSpan(b.label, b.low, b.high) for b in DEFINITIONS[row.instrument].bands]
    return suppressed_table(tallies, bands, row.threshold, small_cell)
