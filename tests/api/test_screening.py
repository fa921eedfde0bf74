"""School screening through the API: a campaign, a CSV import that is all or nothing with every
problem reported by line, alerts for students over the threshold, and per-grade aggregates with
small cells suppressed — and who can see each of them."""

from __future__ import annotations

import base64
from datetime import date
from typing import Any

import pytest
from sqlalchemy import func, select

from domain import models as m
from domain.persons import Gender
from domain.session import system_session
from tests.builders import gid, id_number, insert_person
from tests.conftest import Api


def student_id(n: int, born: date = date(2011, 3, 1)) -> str:
    # Region 990101 is used by no demo person: these numbers belong to this module's students.
    return id_number("990101", born, n)


CAMPAIGN = """mutation($in: CreateScreeningCampaignInput!) { createScreeningCampaign(input: $in) {
  campaign { id name instrument threshold school { name } } errors { code field message } } }"""
IMPORT = """mutation($in: ImportScreeningResultsInput!) { importScreeningResults(input: $in) {
  dryRun rows imported flagged alertsRaised
  rowErrors { line column code message } errors { code field message } } }"""
RESULTS = """query($c: ID!) { screeningResults(campaign: $c, first: 100) { totalCount
  edges { node { id score severity grade className flagged person { id } case { id } } } } }"""
AGGREGATES = """query($c: ID!) { node(id: $c) { ... on ScreeningCampaign { name aggregates {
  suppressionThreshold
  total { screened { value display suppressed } flagged { value display suppressed }
          bands { severity count { value display suppressed } } }
  grades { grade screened { value display suppressed } flagged { value display suppressed }
           bands { severity count { value display suppressed } } } } } } }"""

GRADE_SIZES = {7: 14, 8: 12, 9: 3}
"""29 students: grade 9 is a small cell, and forces complementary suppression."""


@pytest.fixture
async def students(api: Api) -> dict[str, Any]:
    """This module's own students of school2 (and one of school1), as the school's roster
    import registers pupils: sealed under their own data keys."""
    school2 = api.district.units["school2"]
    school1 = api.district.units["school1"]
    home = api.district.communities[0]["grid"]
    numbers: dict[int, list[str]] = {}
    async with system_session(api.engine, reason="test setup") as s:
        n = 0
        for grade, size in GRADE_SIZES.items():
            for _ in range(size):
                n += 1
                numbers.setdefault(grade, []).append(student_id(n))
                await _student(s, api, student_id(n), home, school2)
        other = student_id(900)
        await _student(s, api, other, home, school1)
        await s.commit()
    return {"by_grade": numbers, "other_school": other, "school2": school2}


async def _student(s: Any, api: Api, number: str, home: int, school: int) -> None:
    await insert_person(
        s,
        api.app.state.keys,
        residence=home,
        school=school,
        gender=Gender.FEMALE,
        birth_year=2011,
        sealed={"name": "测试学生", "id_number": number, "birth_date": date(2011, 3, 1)},
    )


def phq9_csv(rows: list[tuple[str, Any, Any, list[Any]]], header: str | None = None) -> str:
    head = header or "id_number,grade,class," + ",".join(f"q{i}" for i in range(1, 10))
    lines = [head] + [",".join([n, str(g), str(c), *map(str, a)]) for n, g, c, a in rows]
    return "\n".join(lines) + "\n"


CALM = [0, 1, 0, 1, 0, 0, 0, 0, 0]  # 2: minimal
MODERATE = [2, 2, 1, 1, 1, 1, 1, 1, 0]  # 10: moderate, over the default threshold
SELF_HARM = [1, 0, 0, 0, 0, 0, 0, 0, 1]  # 2: minimal, but item 9


async def _campaign(api: Api, name: str) -> str:
    data = await api.data("teacher.school2", CAMPAIGN, {"in": {"name": name, "instrument": "PHQ9"}})
    payload = data["createScreeningCampaign"]
    assert payload["errors"] == []
    assert payload["campaign"]["threshold"] == 10
    assert payload["campaign"]["school"]["name"] == "示范区第二中学"
    return str(payload["campaign"]["id"])


async def _db_counts(api: Api, campaign: str) -> tuple[int, int]:
    number = int(base64.b64decode(campaign).decode().split(":")[1])
    async with system_session(api.engine, reason="test assertion") as s:
        results = (
            await s.execute(
                select(func.count())
                .select_from(m.Assessment)
                .where(m.Assessment.campaign_id == number)
            )
        ).scalar_one()
        alerts = (
            await s.execute(
                select(func.count())
                .select_from(m.Alert)
                .where(m.Alert.channel == "school_screening", m.Alert.summary.is_not(None))
            )
        ).scalar_one()
    return int(results), int(alerts)


async def test_only_a_school_counsellor_opens_a_campaign_for_their_school(api: Api) -> None:
    for user in ("grid.donghu", "counselor", "leader"):
        data = await api.data(user, CAMPAIGN, {"in": {"name": "春季普查", "instrument": "PHQ9"}})
        assert data["createScreeningCampaign"]["errors"][0]["code"] == "FORBIDDEN", user
    bad = await api.data(
        "teacher.school2",
        CAMPAIGN,
        {"in": {"name": " ", "instrument": "PHQ9", "threshold": 99}},
    )
    assert {e["field"][0] for e in bad["createScreeningCampaign"]["errors"]} == {
        "name",
        "threshold",
    }


async def test_an_import_with_bad_rows_reports_every_problem_and_writes_nothing(
    api: Api, students: dict[str, Any]
) -> None:
    campaign = await _campaign(api, "有错误的导入")
    good = students["by_grade"][7]
    bad_check = good[1][:-1] + ("0" if good[1][-1] != "0" else "1")
    csv = phq9_csv(
        [
            (good[0], 7, "1班", CALM),  # line 2: fine
            (bad_check, 7, "1班", CALM),  # line 3: check character
            (good[2], 13, "1班", CALM),  # line 4: grade
            (good[3], 7, "", CALM),  # line 5: class
            (good[4], 7, "1班", [4, 0, 0, 0, 0, 0, 0, 0, 0]),  # line 6: answer out of range
            (good[5], 7, "1班", ["x", 0, 0, 0, 0, 0, 0, 0, 0]),  # line 7: not a number
            (good[0], 7, "2班", CALM),  # line 8: same student as line 2
            (students["other_school"], 7, "1班", CALM),  # line 9: another school's student
            (student_id(777), 7, "1班", CALM),  # line 10: nobody
            (good[6], 7, "1班", SELF_HARM),  # line 11: fine
        ]
    )
    before = await _db_counts(api, campaign)
    data = await api.data("teacher.school2", IMPORT, {"in": {"campaign": campaign, "csv": csv}})
    payload = data["importScreeningResults"]
    found = {(e["line"], e["column"], e["code"]) for e in payload["rowErrors"]}
    assert found == {
        (3, "id_number", "INVALID_ID_NUMBER"),
        (4, "grade", "INVALID"),
        (5, "class", "INVALID"),
        (6, "q1", "INVALID"),
        (7, "q1", "INVALID"),
        (8, "id_number", "DUPLICATE"),
        (9, "id_number", "NOT_FOUND"),
        (10, "id_number", "NOT_FOUND"),
    }
    assert payload["errors"][0]["code"] == "INVALID"
    assert payload["imported"] == 0 and payload["alertsRaised"] == 0
    assert await _db_counts(api, campaign) == before, "nothing written, not even the good rows"
    # Another school's student and a number nobody has get the same answer: nothing leaks.
    messages = {e["line"]: e["message"] for e in payload["rowErrors"]}
    assert messages[9] == messages[10]
    for e in payload["rowErrors"]:
        assert good[0] not in e["message"] and students["other_school"] not in e["message"]


async def test_a_missing_column_is_one_clear_error(api: Api, students: dict[str, Any]) -> None:
    campaign = await _campaign(api, "缺列")
    header = "身份证号,年级,班级," + ",".join(f"q{i}" for i in range(1, 9))
    csv = phq9_csv([(students["by_grade"][7][0], 7, "1班", CALM[:8])], header)
    data = await api.data("teacher.school2", IMPORT, {"in": {"campaign": campaign, "csv": csv}})
    errors = data["importScreeningResults"]["rowErrors"]
    assert [(e["line"], e["code"]) for e in errors] == [(1, "REQUIRED")]
    assert "q9" in errors[0]["message"]


def _all_rows(students: dict[str, Any]) -> list[tuple[str, Any, Any, list[Any]]]:
    rows = []
    for grade, numbers in students["by_grade"].items():
        for i, number in enumerate(numbers):
            answers = CALM
            if grade == 7 and i < 3:
                answers = MODERATE
            if grade == 8 and i == 0:
                answers = SELF_HARM
            rows.append((number, grade, f"{i % 2 + 1}班", answers))
    return rows


async def test_a_dry_run_checks_everything_and_writes_nothing(
    api: Api, students: dict[str, Any]
) -> None:
    campaign = await _campaign(api, "试导入")
    csv = phq9_csv(_all_rows(students))
    data = await api.data(
        "teacher.school2", IMPORT, {"in": {"campaign": campaign, "csv": csv, "dryRun": True}}
    )
    payload = data["importScreeningResults"]
    assert payload["errors"] == [] and payload["rowErrors"] == []
    assert (payload["dryRun"], payload["rows"], payload["imported"]) == (True, 29, 0)
    assert payload["flagged"] == 4
    assert (await _db_counts(api, campaign))[0] == 0


@pytest.fixture
async def imported(api: Api, students: dict[str, Any]) -> str:
    campaign = await _campaign(api, "2026年秋季心理普查")
    data = await api.data(
        "teacher.school2",
        IMPORT,
        {"in": {"campaign": campaign, "csv": "\ufeff" + phq9_csv(_all_rows(students))}},
    )
    payload = data["importScreeningResults"]
    assert payload["errors"] == [], payload
    assert (payload["imported"], payload["flagged"], payload["alertsRaised"]) == (29, 4, 4)
    return campaign


async def test_results_are_the_school_counsellors_only(api: Api, imported: str) -> None:
    mine = (await api.data("teacher.school2", RESULTS, {"c": imported}))["screeningResults"]
    assert mine["totalCount"] == 29
    node = mine["edges"][0]["node"]
    assert node["case"] is None and node["person"] is not None and node["grade"] == 7
    assert sum(e["node"]["flagged"] for e in mine["edges"]) == 4
    for user in ("leader", "office", "grid.donghu", "social.donghu", "police.donghu", "counselor"):
        theirs = await api.data(user, RESULTS, {"c": imported})
        assert theirs["screeningResults"]["totalCount"] == 0, user
        one = await api.data(user, "query($id: ID!) { node(id: $id) { id } }", {"id": node["id"]})
        assert one["node"] is None, user


async def test_students_over_the_threshold_become_alerts_for_the_school(
    api: Api, imported: str, students: dict[str, Any]
) -> None:
    query = """query($u: ID!) { alerts(first: 50, filter: {targetUnit: $u}) { edges { node {
      channel riskLevel status summary person { id } } } } }"""
    school = gid("Unit", students["school2"])
    edges = (await api.data("teacher.school2", query, {"u": school}))["alerts"]["edges"]
    screening = [e["node"] for e in edges if e["node"]["channel"] == "SCHOOL_SCREENING"]
    assert len(screening) == 4
    assert sorted(a["riskLevel"] for a in screening) == ["HIGH", "MEDIUM", "MEDIUM", "MEDIUM"]
    assert all(a["status"] == "OPEN" for a in screening)
    # Nobody outside the school sees them, not even roles that read every alert of their
    # jurisdiction (the governance centre): a HIGH one would say a child answered self-harm.
    for user in ("zongzhi", "grid.donghu", "police.donghu", "leader"):
        theirs = (await api.data(user, query, {"u": school}))["alerts"]["edges"]
        assert [e for e in theirs if e["node"]["channel"] == "SCHOOL_SCREENING"] == [], user


async def test_importing_a_student_twice_is_refused(
    api: Api, imported: str, students: dict[str, Any]
) -> None:
    csv = phq9_csv([(students["by_grade"][9][0], 9, "1班", CALM)])
    data = await api.data("teacher.school2", IMPORT, {"in": {"campaign": imported, "csv": csv}})
    errors = data["importScreeningResults"]["rowErrors"]
    assert [(e["line"], e["code"]) for e in errors] == [(2, "DUPLICATE")]


def _cells(row: dict[str, Any]) -> list[dict[str, Any]]:
    return [row["screened"], row["flagged"], *(b["count"] for b in row["bands"])]


async def test_aggregates_suppress_small_cells_and_their_complements(
    api: Api, imported: str
) -> None:
    data = await api.data("leader", AGGREGATES, {"c": imported})
    aggregates = data["node"]["aggregates"]
    assert aggregates["suppressionThreshold"] == 10
    rows = [*aggregates["grades"], aggregates["total"]]
    for row in rows:
        for cell in _cells(row):
            if cell["suppressed"]:
                assert (cell["value"], cell["display"]) == (None, "<10")
            else:
                assert cell["value"] == 0 or cell["value"] >= 10, cell
                assert cell["display"] == str(cell["value"])
        # A grade's bands add up to its total: never exactly one of them hidden.
        band_cells = [row["screened"], *(b["count"] for b in row["bands"])]
        assert sum(c["suppressed"] for c in band_cells) != 1, row
    total = aggregates["total"]
    assert total["screened"]["value"] == 29
    by_grade = {g["grade"]: g for g in aggregates["grades"]}
    assert by_grade[7]["screened"]["value"] == 14
    assert by_grade[9]["screened"]["suppressed"] is True
    # The grade totals add up to the campaign's 29: with grade 9's 3 hidden, 29 - 14 - 12 would
    # give it back, so the smallest other grade (8, with 12) is hidden too.
    assert by_grade[8]["screened"]["suppressed"] is True


async def test_who_may_see_a_campaign(api: Api, imported: str) -> None:
    for user in ("teacher.school2", "leader", "office"):
        data = await api.data(user, "{ screeningCampaigns(first: 50) { edges { node { id } } } }")
        assert imported in {e["node"]["id"] for e in data["screeningCampaigns"]["edges"]}, user
    for user in ("grid.donghu", "police.donghu", "counselor", "partner.chenguang", "volunteer.li"):
        one = await api.data(user, "query($id: ID!) { node(id: $id) { id } }", {"id": imported})
        assert one["node"] is None, user


async def test_import_and_aggregates_are_in_the_access_log(api: Api, imported: str) -> None:
    number = int(base64.b64decode(imported).decode().split(":")[1])
    async with system_session(api.engine, reason="test assertion") as s:
        writes = (
            await s.execute(
                select(func.count(), func.count(m.AccessEvent.person_id))
                .select_from(m.AccessEvent)
                .where(m.AccessEvent.reason == "screening_import", m.AccessEvent.kind == "write")
            )
        ).one()
    assert writes[0] >= 29 and writes[0] == writes[1], "each result is logged with its person"
    await api.data("leader", AGGREGATES, {"c": imported})
    async with system_session(api.engine, reason="test assertion") as s:
        reads = (
            await s.execute(
                select(m.AccessEvent.person_id).where(
                    m.AccessEvent.entity == "screening_campaign",
                    m.AccessEvent.entity_id == number,
                    m.AccessEvent.reason == "aggregate",
                )
            )
        ).all()
    assert reads and all(r.person_id is None for r in reads)
