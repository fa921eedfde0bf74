"""The seeds' stories, end to end through the API (and the operator CLI where an operator acts),
asserting at each step who could and could not see it.

1. A hotline call about a 13-year-old student with suicidal ideation: a school case, the call,
   break-glass by the police, high risk routed to the joint team with a deadline, escalation when
   ignored, a self-harm screen, a referral to the mental-health centre on the guardian's consent,
   follow-ups, closure — and who loses access when.
2. A 失独 family supported by a linked volunteer and the family-planning association: condolence
   visits, grief counselling referred to the partner agency on consent, consent withdrawn.

The third story, a school screening import with bad rows, is ``test_screening.py``.
Each story makes its own people, so the shared demo records stay as the privacy tests expect.
"""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from domain import models as m
from domain.session import system_session
from tests.builders import gid, id_number, number_of, ok, pass_deadline
from tests.conftest import Api

CREATE_PERSON = """mutation($in: CreatePersonInput!) { createPerson(input: $in) {
  person { id } errors { code field } } }"""
OPEN_CASE = """mutation($in: OpenCaseInput!) { openCase(input: $in) {
  case { id leadUnit { kind } } errors { code field } } }"""
RAISE = """mutation($in: RaiseAlertInput!) { raiseAlert(input: $in) {
  alert { id possibleDuplicates person { id } } errors { code field } } }"""
BREAK_GLASS = """mutation($case: ID!, $reason: String!) { breakGlass(case: $case, reason: $reason) {
  access { id expiresAt } errors { code } } }"""
SET_RISK = """mutation($id: ID!, $r: RiskLevel!, $why: String!) {
  setCaseRiskLevel(id: $id, riskLevel: $r, reason: $why) { errors { code } } }"""
ASSIGN = """mutation($case: ID!, $staff: ID!) { assignCaseWorker(case: $case, staff: $staff) {
  errors { code } } }"""
GUARDIAN = """mutation($in: AddGuardianInput!) { addGuardian(input: $in) {
  guardianship { id relationship } errors { code field } } }"""
CONSENT = """mutation($in: RecordConsentInput!) { recordConsent(input: $in) {
  consent { id givenBy } errors { code field } } }"""
REFER = """mutation($in: ReferCaseInput!) { referCase(input: $in) {
  referral { id status } errors { code field } } }"""
RESPOND = """mutation($id: ID!, $yes: Boolean!) { respondToReferral(id: $id, accept: $yes) {
  referral { status } errors { code } } }"""
ASSESS = """mutation($in: RecordAssessmentInput!) { recordAssessment(input: $in) {
  assessment { score severity } alertRaised errors { code } } }"""
FOLLOW = """mutation($in: ScheduleFollowUpInput!) { scheduleFollowUp(input: $in) {
  followUp { id } errors { code } } }"""
INTERVENE = """mutation($in: RecordInterventionInput!) { recordIntervention(input: $in) {
  intervention { id kind } errors { code field } } }"""
STATUS = """mutation($id: ID!, $s: CaseStatus!, $r: String, $drop: Boolean! = false) {
  changeCaseStatus(id: $id, status: $s, reason: $r, dropOpenFollowUps: $drop) {
  case { status } errors { code field } } }"""
ACK = """mutation($id: ID!) { acknowledgeAlert(id: $id) { alert { status } errors { code } } }"""
WITHDRAW = """mutation($id: ID!) { withdrawConsent(id: $id) { consent { withdrawnAt }
  errors { code } } }"""

CASE = """query($id: ID!) { node(id: $id) { ... on Case { status riskLevel presentingProblem
  diagnosis redactedFields subject { name phone maskedName redactedFields } } } }"""
PERSON = """query($id: ID!) { node(id: $id) { ... on Person { name phone maskedName
  redactedFields } } }"""
ALERTS_ON_CASE = """query { alerts(first: 100) { edges { node { id status riskLevel summary
  ackDeadline raisedAt case { id } targetUnit { kind } redactedFields } } } }"""


async def case_as(api: Api, user: str, case: str) -> dict[str, Any] | None:
    node: dict[str, Any] | None = (await api.data(user, CASE, {"id": case}))["node"]
    return node


async def alerts_of(api: Api, user: str, case: str) -> list[dict[str, Any]]:
    edges = (await api.data(user, ALERTS_ON_CASE))["alerts"]["edges"]
    return [e["node"] for e in edges if (e["node"]["case"] or {}).get("id") == case]


def run_jobs(api: Api) -> str:
    """``xinqiao jobs run-once``, as cron would run it on the same database."""
    xinqiao = str(Path(sys.executable).with_name("xinqiao"))
    env = {**os.environ, "XINQIAO_DATABASE_URL": api.url}
    done = subprocess.run(
        [xinqiao, "jobs", "run-once"], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


# Runs `xinqiao jobs run-once` as a process of its own, which sees only what is committed.
@pytest.mark.own_database
async def test_story_hotline_call_about_a_student_with_suicidal_ideation(api: Api) -> None:
    units = api.district.units
    home = gid("Unit", api.district.communities[1]["grid"])  # 东湖第2社区
    born = date.today().replace(year=date.today().year - 13) - timedelta(days=40)
    number = id_number("990102", born, 1)  # a region no demo person has

    # The school registers its pupil; the street's social worker registers her mother.
    student = (
        await ok(
            api,
            "teacher.school2",
            CREATE_PERSON,
            {
                "in": {
                    "name": "林小雨",
                    "gender": "FEMALE",
                    "birthDate": born.isoformat(),
                    "idNumber": number,
                    "residenceUnit": home,
                    "school": gid("Unit", units["school2"]),
                    "phone": "13800000001",
                }
            },
            "createPerson",
        )
    )["person"]["id"]
    mother = (
        await ok(
            api,
            "social.donghu",
            CREATE_PERSON,
            {
                "in": {
                    "name": "林母",
                    "gender": "FEMALE",
                    "birthDate": "1985-05-05",
                    "residenceUnit": home,
                    "phone": "13800000002",
                }
            },
            "createPerson",
        )
    )["person"]["id"]

    # 1. The counsellor opens a case (low mood, medium risk): routed to the governance centre,
    #    which is alerted; the counsellor works it. The police have no business with it yet.
    opened = await ok(
        api,
        "teacher.school2",
        OPEN_CASE,
        {
            "in": {
                "subject": student,
                "sourceChannel": "SCHOOL_SCREENING",
                "riskLevel": "MEDIUM",
                "presentingProblem": "近一月情绪低落，成绩下滑，常独处",
            }
        },
        "openCase",
    )
    case = opened["case"]["id"]
    assert opened["case"]["leadUnit"]["kind"] == "GOVERNANCE_CENTRE"
    routed = await alerts_of(api, "zongzhi", case)
    assert [a["riskLevel"] for a in routed] == ["MEDIUM"]
    assert routed[0]["summary"], "the governance centre leads medium-risk cases"
    assert (await case_as(api, "teacher.school2", case))["presentingProblem"]
    for outsider in ("police.donghu", "grid.donghu", "volunteer.li", "partner.chenguang"):
        assert await case_as(api, outsider, case) is None, outsider

    # 2. Late at night the hotline takes a call: the caller gives the student's ID number.
    call = await ok(
        api,
        "hotline",
        RAISE,
        {
            "in": {
                "channel": "HOTLINE_96525",
                "riskLevel": "HIGH",
                "areaUnit": home,
                "summary": "来电同学称其在班级群中流露轻生念头",
                "newPerson": {"name": "林小雨", "idNumber": number},
            }
        },
        "raiseAlert",
    )
    assert call["alert"]["possibleDuplicates"] == 0
    assert call["alert"]["person"] is None, "matched, but the hotline may not read the student"

    # 3. The police, called out, break glass: time-boxed access, flagged for the auditor.
    reason = "110接警：学生有轻生风险，需立即核实住址并上门"
    glass = await ok(
        api, "police.donghu", BREAK_GLASS, {"case": case, "reason": reason}, "breakGlass"
    )
    assert glass["access"]["expiresAt"]
    seen = await case_as(api, "police.donghu", case)
    assert seen is not None and seen["subject"]["phone"] == "13800000001"
    assert seen["presentingProblem"] is None, "the police never read the narrative"
    grants = await api.data(
        "auditor", "{ emergencyAccesses(first: 50) { edges { node { id reason } } } }"
    )
    assert reason in {e["node"]["reason"] for e in grants["emergencyAccesses"]["edges"]}

    # 4. High risk: the case goes to the police station, the health centre and the community
    #    jointly; the counsellor's assignment ends; the police are alerted with 30 minutes.
    await ok(
        api,
        "teacher.school2",
        SET_RISK,
        {"id": case, "r": "HIGH", "why": "热线报告轻生念头，已有具体计划"},
        "setCaseRiskLevel",
    )
    assert await case_as(api, "teacher.school2", case) is None
    assert (await api.data("teacher.school2", PERSON, {"id": student}))["node"]["name"] == (
        "林小雨"
    ), "she is still the counsellor's pupil"
    high = [a for a in await alerts_of(api, "police.donghu", case) if a["riskLevel"] == "HIGH"]
    assert len(high) == 1 and high[0]["targetUnit"]["kind"] == "POLICE_STATION"
    deadline = datetime.fromisoformat(high[0]["ackDeadline"])
    assert deadline - datetime.fromisoformat(high[0]["raisedAt"]) == timedelta(minutes=30)
    nurse = await case_as(api, "counselor", case)  # 东湖社区卫生服务中心, co-handling
    assert nurse is not None and nurse["presentingProblem"] and nurse["subject"]["name"]
    police = await case_as(api, "police.donghu", case)
    assert police is not None and police["riskLevel"] == "HIGH"
    assert police["presentingProblem"] is None and police["diagnosis"] is None
    for outsider in ("grid.donghu", "volunteer.li", "psychiatrist", "jisheng"):
        assert await case_as(api, outsider, case) is None, outsider

    # 5. Nobody acknowledges in time: cron's `xinqiao jobs run-once` escalates it to the nearest
    #    unit where someone may act. Nobody in the street or district may, so it goes to the
    #    district duty officer in the governance centre (issue 14, ADR 0009).
    await pass_deadline(api, high[0]["id"])  # 30 minutes pass
    assert "escalated" in run_jobs(api)
    escalated = [a for a in await alerts_of(api, "zongzhi", case) if a["id"] == high[0]["id"]]
    assert escalated[0]["status"] == "ESCALATED"
    assert escalated[0]["targetUnit"]["kind"] == "GOVERNANCE_CENTRE"
    ack = await ok(api, "police.donghu", ACK, {"id": high[0]["id"]}, "acknowledgeAlert")
    assert ack["alert"]["status"] == "ACKNOWLEDGED"

    # 6. The health centre's counsellor screens her: item 9 raises a high-risk alert at once.
    screen = await ok(
        api,
        "counselor",
        ASSESS,
        {"in": {"case": case, "instrument": "PHQ9", "answers": [2, 2, 2, 1, 2, 1, 1, 1, 2]}},
        "recordAssessment",
    )
    assert screen["alertRaised"] is True and screen["assessment"]["severity"] == "moderate"

    # 7. The governance centre sends the street's social worker, who records the mother as
    #    guardian and her consent (the child is under 14), and refers the case to the
    #    mental-health centre.
    await ok(
        api,
        "zongzhi",
        ASSIGN,
        {"case": case, "staff": gid("Staff", api.district.staff["social.donghu"])},
        "assignCaseWorker",
    )
    centre = gid("Unit", units["mental_health_centre"])
    consent_in = {
        "person": student,
        "givenBy": "SUBJECT",
        "recipientUnit": centre,
        "purpose": "精神科评估与治疗",
        "scope": ["basic", "identity", "case_admin", "narrative", "clinical"],
    }
    own = await api.data("social.donghu", CONSENT, {"in": consent_in})
    assert own["recordConsent"]["errors"] == [{"code": "REQUIRED", "field": ["guardian"]}]
    await ok(
        api,
        "social.donghu",
        GUARDIAN,
        {"in": {"ward": student, "guardian": mother, "relationship": "MOTHER"}},
        "addGuardian",
    )
    consent = (
        await ok(
            api,
            "social.donghu",
            CONSENT,
            {"in": {**consent_in, "givenBy": "GUARDIAN", "guardian": mother}},
            "recordConsent",
        )
    )["consent"]["id"]
    referral = (
        await ok(
            api,
            "social.donghu",
            REFER,
            {
                "in": {
                    "case": case,
                    "toUnit": centre,
                    "purpose": "精神科评估与治疗",
                    "consent": consent,
                    "sharedClasses": ["basic", "identity", "case_admin", "narrative", "clinical"],
                }
            },
            "referCase",
        )
    )["referral"]["id"]
    assert await case_as(api, "psychiatrist", case) is None, "offered, not yet accepted"
    await ok(api, "psychiatrist", RESPOND, {"id": referral, "yes": True}, "respondToReferral")
    doctor = await case_as(api, "psychiatrist", case)
    assert doctor is not None and doctor["presentingProblem"]
    assert doctor["subject"]["name"] == "林小雨", "identity is shared, with the guardian's consent"
    assert doctor["subject"]["phone"] is None and "phone" in doctor["subject"]["redactedFields"]

    # 8. Follow-ups: a home visit, done, and the next one scheduled.
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    visit = (
        await ok(
            api,
            "counselor",
            FOLLOW,
            {"in": {"case": case, "kind": "HOME_VISIT", "dueAt": tomorrow}},
            "scheduleFollowUp",
        )
    )["followUp"]["id"]
    await ok(
        api,
        "counselor",
        INTERVENE,
        {
            "in": {
                "case": case,
                "kind": "HOME_VISIT",
                "notes": "家访，与母亲共同制定安全计划",
                "completesFollowUp": visit,
                "nextFollowUpAt": (datetime.now(UTC) + timedelta(days=7)).isoformat(),
            }
        },
        "recordIntervention",
    )
    due = await api.data(
        "counselor", "{ dueFollowUps(first: 100, filter: {mine: true}) { edges { node { id } } } }"
    )
    assert len(due["dueFollowUps"]["edges"]) >= 1

    # 9. Closure: not with a follow-up open, unless it is dropped with the outcome.
    for step in ("ASSESSING", "ACTIVE"):
        await ok(api, "counselor", STATUS, {"id": case, "s": step}, "changeCaseStatus")
    refused = await api.data(
        "counselor", STATUS, {"id": case, "s": "CLOSED", "r": "情绪稳定，转入精神卫生中心随访"}
    )
    assert refused["changeCaseStatus"]["errors"][0]["code"] == "INVALID_TRANSITION"
    closed = await ok(
        api,
        "counselor",
        STATUS,
        {"id": case, "s": "CLOSED", "r": "情绪稳定，转入精神卫生中心随访", "drop": True},
        "changeCaseStatus",
    )
    assert closed["case"]["status"] == "CLOSED"

    # The case is closed: the referral and the break-glass grant end with it (both logged),
    # and the police's high-risk access lapses.
    assert await case_as(api, "psychiatrist", case) is None
    assert await case_as(api, "police.donghu", case) is None
    grant = await api.data(
        "auditor",
        "query($id: ID!) { node(id: $id) { ... on EmergencyAccess { expiresAt } } }",
        {"id": glass["access"]["id"]},
    )
    assert datetime.fromisoformat(grant["node"]["expiresAt"]) <= datetime.now(UTC)
    async with system_session(api.engine, reason="test assertion") as s:
        ended = (
            await s.execute(
                select(m.AccessEvent.entity).where(
                    m.AccessEvent.reason == "case_closed",
                    m.AccessEvent.person_id == number_of(student),
                )
            )
        ).scalars()
        assert sorted(ended) == ["emergency_grant", "referral"]

    # The mother can be told who saw her daughter's record, and why.
    history = await api.data(
        "auditor",
        """query($p: ID!) { personAccessHistory(person: $p, first: 100) { edges { node {
          actorUsername kind relations } } } }""",
        {"p": student},
    )
    events = [e["node"] for e in history["personAccessHistory"]["edges"]]
    assert any(
        e["actorUsername"] == "police.donghu" and "emergency" in (e["relations"] or [])
        for e in events
    )
    assert any(e["actorUsername"] == "psychiatrist" and e["kind"] == "read" for e in events)
    assert not any(e["actorUsername"] == "volunteer.li" and e["kind"] == "read" for e in events)


async def test_story_a_shidu_family_with_a_volunteer_and_a_partner_agency(api: Api) -> None:
    records = api.district.records[1]  # 东湖第2社区: a 失独 family linked to volunteer.li
    family = gid("Family", records["shidu_family"])
    parent = gid("Person", records["shidu_member"])
    family_query = """query($id: ID!) { node(id: $id) { ... on Family { specialType
      circumstances redactedFields members { person { name phone } } } } }"""

    # The linked volunteer knows the family to visit it, not why it is on file.
    seen = (await api.data("volunteer.li", family_query, {"id": family}))["node"]
    assert seen is not None and seen["members"][0]["person"]["phone"]
    assert seen["specialType"] is None and "specialType" in seen["redactedFields"]
    assert seen["circumstances"] is None
    # The family-planning association sees that it is a 失独 family, and its circumstances.
    association = (await api.data("jisheng", family_query, {"id": family}))["node"]
    assert association["specialType"] == "BEREAVED_ONLY_CHILD" and association["circumstances"]
    assert (await api.data("grid.donghu", family_query, {"id": family}))["node"] is None

    # 1. Condolence visits (慰问) by the volunteer and by the association.
    for user, note in (
        ("volunteer.li", "中秋慰问，送去月饼"),
        ("jisheng", "协会走访，了解养老需求"),
    ):
        await ok(
            api,
            user,
            INTERVENE,
            {"in": {"family": family, "kind": "CONDOLENCE_VISIT", "notes": note}},
            "recordIntervention",
        )
    # A volunteer cannot record casework, only condolence visits.
    casework = await api.data(
        "volunteer.li", INTERVENE, {"in": {"family": family, "kind": "COUNSELLING", "notes": "x"}}
    )
    assert casework["recordIntervention"]["errors"][0]["code"] in {"FORBIDDEN", "NOT_FOUND"}

    # 2. Grief counselling: the social worker opens a case for the mother and, with her
    #    consent, refers it to the partner agency, sharing what counselling needs.
    case = (
        await ok(
            api,
            "social.donghu",
            OPEN_CASE,
            {
                "in": {
                    "subject": parent,
                    "sourceChannel": "GRID_REPORT",
                    "riskLevel": "LOW",
                    "presentingProblem": "独子离世三年，近来失眠、不愿出门",
                    "family": family,
                }
            },
            "openCase",
        )
    )["case"]["id"]
    partner = gid("Unit", api.district.units["partner"])
    consent = (
        await ok(
            api,
            "social.donghu",
            CONSENT,
            {
                "in": {
                    "person": parent,
                    "givenBy": "SUBJECT",
                    "recipientUnit": partner,
                    "purpose": "哀伤辅导",
                    "scope": ["basic", "identity", "contact", "case_admin", "narrative"],
                }
            },
            "recordConsent",
        )
    )["consent"]["id"]
    referral = (
        await ok(
            api,
            "social.donghu",
            REFER,
            {
                "in": {
                    "case": case,
                    "toUnit": partner,
                    "purpose": "哀伤辅导",
                    "consent": consent,
                    "sharedClasses": ["basic", "identity", "contact", "case_admin", "narrative"],
                }
            },
            "referCase",
        )
    )["referral"]["id"]
    await ok(api, "partner.chenguang", RESPOND, {"id": referral, "yes": True}, "respondToReferral")
    chenguang = await case_as(api, "partner.chenguang", case)
    assert chenguang is not None and chenguang["presentingProblem"]
    assert chenguang["subject"]["phone"], "contact is shared for appointments"
    parent_view = (await api.data("partner.chenguang", PERSON, {"id": parent}))["node"]
    assert parent_view["name"]
    counselling = (
        await ok(
            api,
            "partner.chenguang",
            INTERVENE,
            {"in": {"case": case, "kind": "COUNSELLING", "notes": "第一次哀伤辅导，建立关系"}},
            "recordIntervention",
        )
    )["intervention"]["id"]

    # The volunteer never sees the case nor the counselling, though the case is the family's.
    assert await case_as(api, "volunteer.li", case) is None
    notes = """query($id: ID!) { node(id: $id) { ... on Intervention { notes } } }"""
    assert (await api.data("volunteer.li", notes, {"id": counselling}))["node"] is None
    # The association follows services to 失独 families (that counselling happened), not notes.
    assert (await api.data("jisheng", notes, {"id": counselling}))["node"] == {"notes": None}

    # 3. She withdraws consent: the partner loses the case and her record at once; the
    #    counselling it recorded stays with the case team.
    await ok(api, "social.donghu", WITHDRAW, {"id": consent}, "withdrawConsent")
    assert await case_as(api, "partner.chenguang", case) is None
    assert (await api.data("partner.chenguang", PERSON, {"id": parent}))["node"] is None
    kept = (await api.data("social.donghu", notes, {"id": counselling}))["node"]
    assert kept["notes"] == "第一次哀伤辅导，建立关系"
