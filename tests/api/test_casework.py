"""Casework through the API: assessments with alert rules; consent, referral, acceptance and
withdrawal — and who can see each step."""

from __future__ import annotations

import pytest

from domain.persons import Gender
from tests.builders import (
    gid,
    insert_case,
    insert_person,
    make_alert,
    make_case,
    make_person,
    number_of,
    pass_deadline,
)
from tests.conftest import Api

ASSESS = """mutation($in: RecordAssessmentInput!) { recordAssessment(input: $in) {
  assessment { id instrument score severity } alertRaised errors { code field } } }"""


async def test_phq9_is_scored_on_the_server_and_self_harm_raises_an_alert(api: Api) -> None:
    case = gid("Case", api.district.records[0]["high_case"])
    calm = await api.data(
        "counselor",
        ASSESS,
        {"in": {"case": case, "instrument": "PHQ9", "answers": [1, 1, 1, 1, 1, 0, 0, 0, 0]}},
    )
    assert calm["recordAssessment"]["assessment"] == {
        "id": calm["recordAssessment"]["assessment"]["id"],
        "instrument": "PHQ9",
        "score": 5,
        "severity": "mild",
    }
    assert calm["recordAssessment"]["alertRaised"] is False
    before = (await api.data("police.donghu", "{ alerts(first: 100) { totalCount } }"))["alerts"][
        "totalCount"
    ]
    harm = await api.data(
        "counselor",
        ASSESS,
        {"in": {"case": case, "instrument": "PHQ9", "answers": [2, 2, 1, 1, 0, 0, 0, 0, 1]}},
    )
    assert harm["recordAssessment"]["alertRaised"] is True
    after = (await api.data("police.donghu", "{ alerts(first: 100) { totalCount } }"))["alerts"][
        "totalCount"
    ]
    assert after == before + 1, "the case's lead team (police for a high-risk case) is alerted"
    bad = await api.data(
        "counselor", ASSESS, {"in": {"case": case, "instrument": "PHQ9", "answers": [9] * 9}}
    )
    assert bad["recordAssessment"]["errors"][0]["code"] == "INVALID"
    police = await api.data(
        "police.donghu", ASSESS, {"in": {"case": case, "instrument": "GAD7", "answers": [0] * 7}}
    )
    assert police["recordAssessment"]["errors"][0]["code"] == "FORBIDDEN"


CONSENT = """mutation($in: RecordConsentInput!) { recordConsent(input: $in) {
  consent { id givenBy scope } errors { code field } } }"""
REFER = """mutation($in: ReferCaseInput!) { referCase(input: $in) {
  referral { id status sharedClasses } errors { code field } } }"""
CASE_Q = "query($id: ID!) { node(id: $id) { ... on Case { status presentingProblem } } }"


async def test_referral_with_consent_from_offer_to_withdrawal(api: Api) -> None:
    r = api.district.records[0]
    case, subject = gid("Case", r["medium_case"]), gid("Person", r["medium_subject"])
    partner = gid("Unit", api.district.units["partner"])
    no_consent = await api.data(
        "social.donghu",
        REFER,
        {
            "in": {
                "case": case,
                "toUnit": partner,
                "purpose": "心理咨询",
                "sharedClasses": ["case_admin"],
            }
        },
    )
    assert no_consent["referCase"]["errors"] == [{"code": "REQUIRED", "field": ["consent"]}]
    consent = (
        await api.data(
            "social.donghu",
            CONSENT,
            {
                "in": {
                    "person": subject,
                    "givenBy": "SUBJECT",
                    "recipientUnit": partner,
                    "purpose": "心理咨询",
                    "scope": ["basic", "case_admin", "narrative"],
                }
            },
        )
    )["recordConsent"]
    assert consent["errors"] == []
    offered = (
        await api.data(
            "social.donghu",
            REFER,
            {
                "in": {
                    "case": case,
                    "toUnit": partner,
                    "purpose": "心理咨询",
                    "consent": consent["consent"]["id"],
                    "sharedClasses": ["basic", "case_admin", "narrative"],
                }
            },
        )
    )["referCase"]
    assert offered["errors"] == [] and offered["referral"]["status"] == "OFFERED"
    referral = offered["referral"]["id"]
    # Offered: the partner sees the offer, not yet the case.
    offers = await api.data(
        "partner.chenguang",
        "{ referrals(filter: {status: [OFFERED]}) { edges { node { id purpose } } } }",
    )
    assert referral in {e["node"]["id"] for e in offers["referrals"]["edges"]}
    assert (await api.data("partner.chenguang", CASE_Q, {"id": case}))["node"] is None
    accepted = await api.data(
        "partner.chenguang",
        """mutation($id: ID!) { respondToReferral(id: $id, accept: true) {
        referral { status } errors { code } } }""",
        {"id": referral},
    )
    assert accepted["respondToReferral"]["referral"]["status"] == "ACCEPTED"
    seen = (await api.data("partner.chenguang", CASE_Q, {"id": case}))["node"]
    assert seen["status"] and seen["presentingProblem"]
    # Someone else cannot answer a referral that is not theirs.
    other = await api.data(
        "counselor",
        """mutation($id: ID!) { respondToReferral(id: $id, accept: false) {
        errors { code } } }""",
        {"id": referral},
    )
    assert other["respondToReferral"]["errors"][0]["code"] == "NOT_FOUND"
    withdrawn = await api.data(
        "social.donghu",
        """mutation($id: ID!) { withdrawConsent(id: $id) {
        consent { withdrawnAt } errors { code } } }""",
        {"id": consent["consent"]["id"]},
    )
    assert withdrawn["withdrawConsent"]["consent"]["withdrawnAt"]
    assert (await api.data("partner.chenguang", CASE_Q, {"id": case}))["node"] is None


async def test_a_child_under_14_needs_a_guardians_consent(api: Api) -> None:
    r = api.district.records[0]
    child = gid("Person", r["child_u14"])
    partner = gid("Unit", api.district.units["partner"])
    # The school counsellor of school 1 is not a demo account; the social worker on the child's
    # jurisdiction may not record consents for persons it is not assigned to.
    refused = await api.data(
        "social.donghu",
        CONSENT,
        {
            "in": {
                "person": child,
                "givenBy": "SUBJECT",
                "recipientUnit": partner,
                "purpose": "x",
                "scope": ["basic"],
            }
        },
    )
    assert refused["recordConsent"]["errors"][0]["code"] in {"FORBIDDEN", "REQUIRED"}
    high_subject = gid("Person", r["high_subject"])
    teen = await api.data(
        "teacher.school2",
        CONSENT,
        {
            "in": {
                "person": high_subject,
                "givenBy": "SUBJECT",
                "recipientUnit": partner,
                "purpose": "咨询",
                "scope": ["basic"],
            }
        },
    )
    assert teen["recordConsent"]["errors"] == [], "14 to 17: the young person may consent"


async def test_risk_change_reroutes_the_case_and_alerts_the_new_team(api: Api) -> None:
    r = api.district.records[1]  # 东湖第2社区: social.donghu is assigned to its medium case
    case = gid("Case", r["medium_case"])
    query = "query($id: ID!) { node(id: $id) { ... on Case { riskLevel leadUnit { kind } } } }"
    assert (await api.data("social.donghu", query, {"id": case}))["node"]["riskLevel"] == "MEDIUM"
    alerts_before = (await api.data("police.donghu", "{ alerts(first: 100) { totalCount } }"))[
        "alerts"
    ]["totalCount"]
    changed = await api.data(
        "social.donghu",
        """mutation($id: ID!) { setCaseRiskLevel(id: $id,
        riskLevel: HIGH, reason: "评估发现自伤计划") { errors { code } } }""",
        {"id": case},
    )
    assert changed["setCaseRiskLevel"]["errors"] == []
    police = (await api.data("police.donghu", query, {"id": case}))["node"]
    assert police == {"riskLevel": "HIGH", "leadUnit": {"kind": "POLICE_STATION"}}
    alerts_after = (await api.data("police.donghu", "{ alerts(first: 100) { totalCount } }"))[
        "alerts"
    ]["totalCount"]
    assert alerts_after == alerts_before + 1
    # The previous assignment ended: the social worker no longer works the case.
    assert (await api.data("social.donghu", query, {"id": case}))["node"] is None


# Three escalation runs at once: three connections, committed.
@pytest.mark.own_database
async def test_overdue_alerts_escalate_once_however_many_runs(api: Api) -> None:
    import asyncio
    from datetime import UTC, datetime

    from sqlalchemy import select

    from api.jobs import escalate_overdue
    from domain import models as m
    from domain.session import system_session

    raised = await make_alert(api, community=2)
    alert_id = number_of(raised)
    await pass_deadline(api, raised)
    await asyncio.gather(*(escalate_overdue(api.engine) for _ in range(3)))
    async with system_session(api.engine, reason="test") as s:
        alert = (await s.execute(select(m.Alert).where(m.Alert.id == alert_id))).scalar_one()
    assert alert.status.value == "escalated"
    # Nobody in the grid's community, street or district may act on it: it goes to the duty
    # officer's unit, once (issue 14: escalation only to someone who can act).
    assert alert.target_unit_id == api.district.units["governance"], "to who can act, once"
    assert alert.ack_deadline > datetime.now(UTC)


async def test_configured_deadlines_apply_to_new_alerts(api: Api) -> None:
    """A deployment that gives high-risk alerts 5 minutes gets 5-minute deadlines."""
    from datetime import datetime, timedelta

    import httpx

    from api.app import create_app
    from domain.cases import RiskLevel

    settings = api.app.state.settings
    five = timedelta(minutes=5)
    app = create_app(
        type(settings)(
            database_url=api.url,
            key_dir=settings.key_dir,
            scheduler_seconds=0,
            ack_deadlines={**settings.ack_deadlines, RiskLevel.HIGH: five},
        )
    )
    query = """mutation($in: RaiseAlertInput!) { raiseAlert(input: $in) {
      alert { raisedAt ackDeadline } errors { code } } }"""
    variables = {
        "in": {
            "channel": "POLICE_110",
            "riskLevel": "HIGH",
            "areaUnit": gid("Unit", api.district.communities[0]["grid"]),
        }
    }
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        response = await client.post(
            "/graphql",
            json={"query": query, "variables": variables},
            headers={"Authorization": f"Bearer {api.token('hotline')}"},
        )
    await app.state.engine.dispose()
    body = response.json()
    alert = body["data"]["raiseAlert"]["alert"]
    assert alert is not None, body
    raised, deadline = (datetime.fromisoformat(alert[k]) for k in ("raisedAt", "ackDeadline"))
    assert deadline - raised == five


FOLLOW = """mutation($in: ScheduleFollowUpInput!) { scheduleFollowUp(input: $in) {
  followUp { id kind dueAt doneAt } errors { code field } } }"""
STATUS = """mutation($id: ID!, $s: CaseStatus!, $r: String, $drop: Boolean! = false) {
  changeCaseStatus(id: $id, status: $s, reason: $r, dropOpenFollowUps: $drop) {
  case { status followUps { doneAt droppedReason } } errors { code field } } }"""


async def test_follow_ups_due_lists_completion_and_the_closing_rule(api: Api) -> None:
    from datetime import UTC, datetime, timedelta

    # A case of its own.
    person = await make_person(api, name="随访对象", birthDate="1980-02-02")
    case = await make_case(api, person)
    for status in ("ASSESSING", "ACTIVE"):
        await api.data("social.donghu", STATUS, {"id": case, "s": status})
    soon = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    later = (datetime.now(UTC) + timedelta(days=8)).isoformat()
    first = (
        await api.data(
            "social.donghu", FOLLOW, {"in": {"case": case, "kind": "HOME_VISIT", "dueAt": soon}}
        )
    )["scheduleFollowUp"]
    assert first["errors"] == [] and first["followUp"]["doneAt"] is None
    past = await api.data(
        "social.donghu",
        FOLLOW,
        {"in": {"case": case, "kind": "HOME_VISIT", "dueAt": "2020-01-01T00:00:00+00:00"}},
    )
    assert past["scheduleFollowUp"]["errors"][0]["field"] == ["dueAt"]
    due = await api.data(
        "social.donghu",
        "{ dueFollowUps(filter: {mine: true}) { edges { node { id case { id } } } } }",
    )
    assert first["followUp"]["id"] in {e["node"]["id"] for e in due["dueFollowUps"]["edges"]}
    grid = await api.data("grid.donghu", "{ dueFollowUps { totalCount } }")
    assert first["followUp"]["id"] not in str(grid), "not the grid worker's case"
    # An intervention completes it and schedules the next.
    done = await api.data(
        "social.donghu",
        """mutation($in: RecordInterventionInput!) {
        recordIntervention(input: $in) { intervention { id } errors { code field } } }""",
        {
            "in": {
                "case": case,
                "kind": "HOME_VISIT",
                "notes": "随访",
                "completesFollowUp": first["followUp"]["id"],
                "nextFollowUpAt": later,
            }
        },
    )
    assert done["recordIntervention"]["errors"] == []
    blocked = await api.data("social.donghu", STATUS, {"id": case, "s": "CLOSED", "r": "目标达成"})
    assert blocked["changeCaseStatus"]["errors"] == [
        {"code": "INVALID_TRANSITION", "field": ["dropOpenFollowUps"]}
    ], "one follow-up is still open"
    closed = await api.data(
        "social.donghu", STATUS, {"id": case, "s": "CLOSED", "r": "目标达成", "drop": True}
    )
    result = closed["changeCaseStatus"]
    assert result["errors"] == [] and result["case"]["status"] == "CLOSED"
    assert all(f["doneAt"] for f in result["case"]["followUps"])
    assert any(f["droppedReason"] == "目标达成" for f in result["case"]["followUps"])
    # Every write on the way is in the access log: the opener's own assignment, and the
    # follow-ups created, completed and dropped by other mutations.
    from sqlalchemy import select

    from domain.access_log import AccessEvent
    from domain.session import system_session

    subject = number_of(person)
    async with system_session(api.engine, reason="test assertion") as s:
        writes = {
            (e.entity, e.reason)
            for e in (
                await s.execute(
                    select(AccessEvent).where(
                        AccessEvent.person_id == subject, AccessEvent.kind == "write"
                    )
                )
            ).scalars()
        }
    assert {
        ("case_assignment", "assign"),
        ("follow_up", "create"),
        ("follow_up", "complete"),
        ("follow_up", "drop"),
    } <= writes, writes


async def test_intake_matches_creates_or_flags(api: Api) -> None:

    from domain.session import system_session
    from domain.values import id_check_char

    raise_alert = """mutation($in: RaiseAlertInput!) { raiseAlert(input: $in) {
      alert { id possibleDuplicates person { id name } } errors { code field } } }"""
    area = gid("Unit", api.district.communities[0]["grid"])
    known = await api.plain_person(api.district.records[0]["adult"])
    matched = (
        await api.data(
            "hotline",
            raise_alert,
            {
                "in": {
                    "channel": "HOTLINE_96525",
                    "riskLevel": "MEDIUM",
                    "areaUnit": area,
                    "newPerson": {"name": "来电者", "idNumber": known.id_number},
                }
            },
        )
    )["raiseAlert"]
    assert matched["errors"] == [] and matched["alert"]["possibleDuplicates"] == 0
    body = "11010519900101123"
    fresh_number = body + id_check_char(body)
    created = (
        await api.data(
            "hotline",
            raise_alert,
            {
                "in": {
                    "channel": "HOTLINE_96525",
                    "riskLevel": "MEDIUM",
                    "areaUnit": area,
                    "newPerson": {
                        "name": "新来电者",
                        "idNumber": fresh_number,
                        "phone": "13700000001",
                    },
                }
            },
        )
    )["raiseAlert"]
    assert created["alert"]["person"]["name"] == "新来电者", "the hotline sees who it registered"
    async with system_session(api.engine, reason="test: a second person with that phone") as s:
        await insert_person(
            s,
            api.app.state.keys,
            residence=api.district.communities[0]["grid"],
            gender=Gender.UNKNOWN,
            sealed={"name": "同号码", "phone": "13700000001"},
        )
        await s.commit()
    flagged = (
        await api.data(
            "hotline",
            raise_alert,
            {
                "in": {
                    "channel": "HOTLINE_96525",
                    "riskLevel": "LOW",
                    "areaUnit": area,
                    "newPerson": {"name": "再来电", "phone": "13700000001"},
                }
            },
        )
    )["raiseAlert"]
    assert flagged["alert"]["possibleDuplicates"] == 2 and flagged["alert"]["person"] is None


ASSIGN = """mutation($case: ID!, $staff: ID!) { assignCaseWorker(case: $case, staff: $staff) {
  case { id } errors { code field } } }"""


async def test_a_worker_is_assigned_only_where_their_role_may_work_the_case(api: Api) -> None:
    """An assignment is an access grant, so the assigner cannot hand a case to any account."""
    r = api.district.records[3]  # 西山: no other test reads its medium case
    case = gid("Case", r["medium_case"])
    staff = {name: gid("Staff", api.district.staff[name]) for name in api.district.staff}

    async def assign(by: str, who: str) -> dict[str, object]:
        out = await api.data(by, ASSIGN, {"case": case, "staff": staff[who]})
        return out["assignCaseWorker"]

    # Before: the counsellor is not on the case and cannot read its narrative.
    assert (await api.data("counselor", CASE_Q, {"id": case}))["node"] is None
    # A volunteer or the police (whose case grants are for high-risk cases) cannot be put on a
    # medium-risk case: the policy gives their roles nothing there.
    for who in ("volunteer.li", "police.donghu", "partner.chenguang"):
        refused = await assign("zongzhi", who)
        assert refused["errors"] == [{"code": "INVALID", "field": ["staff"]}], who
    assert (await api.data("police.donghu", CASE_Q, {"id": case}))["node"] is None
    # Someone with no right to assign on the case learns nothing about it.
    outsider = await assign("grid.donghu", "counselor")
    assert outsider["errors"][0]["code"] in {"NOT_FOUND", "FORBIDDEN"}
    assert (await api.data("counselor", CASE_Q, {"id": case}))["node"] is None
    # The governance centre assigns the counsellor, who then works the case.
    done = await assign("zongzhi", "counselor")
    assert done["errors"] == []
    node = (await api.data("counselor", CASE_Q, {"id": case}))["node"]
    assert node is not None and node["presentingProblem"]
    # Twice is refused, not stacked.
    again = await assign("zongzhi", "counselor")
    assert again["errors"] == [{"code": "DUPLICATE", "field": ["staff"]}]


async def test_nobody_is_assigned_to_a_closed_case(api: Api) -> None:
    from domain.session import system_session

    community = api.district.communities[3]
    async with system_session(api.engine, reason="test setup: a closed case") as s:
        kase = await insert_case(
            s,
            api.app.state.keys,
            subject=api.district.records[3]["adult"],
            area=community["grid"],
            lead=api.district.units["governance"],
            status="closed",
            risk="medium",
            channel="hotline_96525",
        )
        await s.commit()
        case_id = kase.id
    out = await api.data(
        "zongzhi",
        ASSIGN,
        {"case": gid("Case", case_id), "staff": gid("Staff", api.district.staff["counselor"])},
    )
    assert out["assignCaseWorker"]["errors"] == [{"code": "INVALID_TRANSITION", "field": ["case"]}]


async def test_the_case_risk_decides_who_may_be_assigned_not_the_assigners_grants(
    api: Api,
) -> None:
    """The governance centre's own grants mention only medium risk; a grid worker may still be
    put on a low-risk case, and a volunteer still may not."""
    case = gid("Case", api.district.records[1]["low_case"])
    grid = gid("Staff", api.district.staff["grid.donghu"])
    out = await api.data("zongzhi", ASSIGN, {"case": case, "staff": grid})
    assert out["assignCaseWorker"]["errors"] == []
    volunteer = gid("Staff", api.district.staff["volunteer.li"])
    out = await api.data("zongzhi", ASSIGN, {"case": case, "staff": volunteer})
    assert out["assignCaseWorker"]["errors"] == [{"code": "INVALID", "field": ["staff"]}]


UPDATE_CASE = """mutation($id: ID!, $in: UpdateCaseInput!) { updateCase(id: $id, input: $in) {
  case { supportPlan presentingProblem diagnosis } errors { code field } } }"""


async def test_the_support_plan_is_written_by_the_team_within_what_it_may_read(api: Api) -> None:
    person = await make_person(api, name="计划测试", gender="MALE", birthDate="1970-01-01")
    case = await make_case(api, person, channel="GRID_REPORT")
    plan = "每周电话随访一次；链接社区志愿者陪伴；两周后复评"
    written = await api.data(
        "social.donghu", UPDATE_CASE, {"id": case, "in": {"supportPlan": plan}}
    )
    assert written["updateCase"] == {
        "case": {"supportPlan": plan, "presentingProblem": None, "diagnosis": None},
        "errors": [],
    }
    # A social worker does not read clinical data, so may not write it either: nothing changes.
    clinical = await api.data(
        "social.donghu", UPDATE_CASE, {"id": case, "in": {"supportPlan": "改", "diagnosis": "x"}}
    )
    assert clinical["updateCase"]["errors"] == [{"code": "FORBIDDEN", "field": ["diagnosis"]}]
    again = await api.data("social.donghu", UPDATE_CASE, {"id": case, "in": {}})
    assert again["updateCase"]["case"]["supportPlan"] == plan
    # Outside the team: the case does not exist for you.
    outsider = await api.data("grid.donghu", UPDATE_CASE, {"id": case, "in": {"supportPlan": "x"}})
    assert outsider["updateCase"]["errors"][0]["code"] == "NOT_FOUND"
    too_long = await api.data(
        "social.donghu", UPDATE_CASE, {"id": case, "in": {"supportPlan": "长" * 5001}}
    )
    assert too_long["updateCase"]["errors"][0]["field"] == ["supportPlan"]
