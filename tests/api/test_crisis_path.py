"""Every crisis reaches someone who can act (issue 14): alerts go to their tier's team, escalate
only to units where someone may acknowledge them (ending at the district duty officer), and are
handled by opening a case from them or dismissing them; a new case tells its opener where it
went."""

from __future__ import annotations

from typing import Any

from api.jobs import escalate_overdue, units_without_anyone_to_act
from tests.builders import gid, make_alert, number_of, pass_deadline
from tests.conftest import Api

ALERT = """query($id: ID!) { node(id: $id) { ... on Alert {
  status resolution closedAt targetUnit { id } case { id } redactedFields } } }"""
ACK = """mutation($id: ID!) { acknowledgeAlert(id: $id) { alert { status } errors { code } } }"""
DISMISS = """mutation($id: ID!, $r: String!) { dismissAlert(id: $id, reason: $r) {
  alert { status resolution closedAt } errors { code field } } }"""
OPEN = """mutation($in: OpenCaseInput!) { openCase(input: $in) {
  case { id } errors { code field }
  routing { leadUnit { id name } coUnits { id } visibleToYou } } }"""


def unit(api: Api, key: str) -> str:
    return gid("Unit", api.district.units[key])


async def alert_as(api: Api, user: str, alert: str) -> dict[str, Any] | None:
    node: dict[str, Any] | None = (await api.data(user, ALERT, {"id": alert}))["node"]
    return node


async def test_a_high_alert_reaches_the_whole_joint_team_and_the_police_own_it(api: Api) -> None:
    alert = await make_alert(api, risk="HIGH", summary="来电者称其子有轻生念头")
    police = await alert_as(api, "police.donghu", alert)
    assert police is not None and police["targetUnit"]["id"] == unit(api, "police:donghu")
    # health centre and the community leg (its grid team) have it at once too
    assert await alert_as(api, "grid.donghu", alert) is not None
    acked = await api.data("police.donghu", ACK, {"id": alert})
    assert acked["acknowledgeAlert"] == {"alert": {"status": "ACKNOWLEDGED"}, "errors": []}


async def test_a_medium_alert_goes_to_the_governance_centre(api: Api) -> None:
    alert = await make_alert(api, risk="MEDIUM")
    node = await alert_as(api, "zongzhi", alert)
    assert node is not None and node["targetUnit"]["id"] == unit(api, "governance")
    assert (await api.data("zongzhi", ACK, {"id": alert}))["acknowledgeAlert"]["errors"] == []
    assert await alert_as(api, "police.donghu", alert) is None


async def test_a_low_alert_stays_with_the_community_grid(api: Api) -> None:
    alert = await make_alert(api, risk="LOW")
    node = await alert_as(api, "grid.donghu", alert)
    assert node is not None and node["targetUnit"]["id"] == gid(
        "Unit", api.district.communities[0]["grid"]
    )


async def test_escalation_skips_units_nobody_staffs_and_ends_with_the_duty_officer(
    api: Api,
) -> None:
    """The grid's community, street and district have no account that may act on an alert:
    an overdue alert goes straight to the duty officer's unit, where `duty` acknowledges."""
    alert = await make_alert(api, risk="LOW")
    await pass_deadline(api, alert)
    assert await escalate_overdue(api.engine) >= 1
    node = await alert_as(api, "duty", alert)
    assert node is not None and node["status"] == "ESCALATED"
    assert node["targetUnit"]["id"] == unit(api, "governance")
    acked = await api.data("duty", ACK, {"id": alert})
    assert acked["acknowledgeAlert"] == {"alert": {"status": "ACKNOWLEDGED"}, "errors": []}


async def test_every_unit_of_the_demo_district_has_someone_to_act_on_its_alerts(
    api: Api,
) -> None:
    assert await units_without_anyone_to_act(api.engine) == []


async def test_a_case_opened_from_an_alert_links_and_closes_it(api: Api) -> None:
    caller = {"name": "宋明远", "gender": "MALE", "phone": "13900001234"}
    alert = await make_alert(api, risk="LOW", newPerson=caller, summary="邻居反映其情绪低落")
    about = "query($id: ID!) { node(id: $id) { ... on Alert { person { id } } } }"
    person = (await api.data("grid.donghu", about, {"id": alert}))["node"]["person"]["id"]
    opened = await api.data(
        "grid.donghu",
        OPEN,
        {
            "in": {
                "subject": person,
                "sourceChannel": "HOTLINE_96525",
                "riskLevel": "LOW",
                "alert": alert,
            }
        },
    )
    payload = opened["openCase"]
    assert payload["errors"] == [] and payload["case"] is not None
    node = await alert_as(api, "grid.donghu", alert)
    assert node is not None
    assert (node["status"], node["resolution"]) == ("CLOSED", "CASE_OPENED")
    assert node["case"] == {"id": payload["case"]["id"]} and node["closedAt"]
    # the hotline that raised it follows its status, not the case
    raised = await alert_as(api, "hotline", alert)
    assert raised is not None and raised["status"] == "CLOSED" and raised["case"] is None


async def test_an_alert_about_someone_else_cannot_open_this_case(api: Api) -> None:
    other = gid("Person", api.district.records[0]["guardian"])
    adult = gid("Person", api.district.records[0]["adult"])
    alert = await make_alert(api, "grid.donghu", risk="LOW", person=adult)
    opened = await api.data(
        "grid.donghu",
        OPEN,
        {"in": {"subject": other, "sourceChannel": "WALK_IN", "riskLevel": "LOW", "alert": alert}},
    )
    assert opened["openCase"]["errors"] == [{"code": "INVALID", "field": ["alert"]}]
    assert (await alert_as(api, "grid.donghu", alert) or {})["status"] == "OPEN"


async def test_a_dismissed_alert_needs_a_reason_and_closes(api: Api) -> None:
    alert = await make_alert(api, risk="LOW")
    empty = await api.data("grid.donghu", DISMISS, {"id": alert, "r": "  "})
    assert empty["dismissAlert"]["errors"] == [{"code": "REQUIRED", "field": ["reason"]}]
    done = await api.data("grid.donghu", DISMISS, {"id": alert, "r": "上门核实，系误报"})
    assert done["dismissAlert"]["errors"] == []
    assert done["dismissAlert"]["alert"]["status"] == "CLOSED"
    assert done["dismissAlert"]["alert"]["resolution"] == "DISMISSED"
    again = await api.data("grid.donghu", DISMISS, {"id": alert, "r": "再次关闭"})
    assert again["dismissAlert"]["errors"] == [{"code": "INVALID_TRANSITION", "field": None}]


async def test_opening_a_high_risk_case_says_where_it_went(api: Api) -> None:
    person = gid("Person", api.district.records[0]["adult"])
    opened = await api.data(
        "grid.donghu",
        OPEN,
        {"in": {"subject": person, "sourceChannel": "GRID_REPORT", "riskLevel": "HIGH"}},
    )
    payload = opened["openCase"]
    assert payload["errors"] == []
    routing = payload["routing"]
    assert routing["leadUnit"]["id"] == unit(api, "police:donghu")
    assert {u["id"] for u in routing["coUnits"]} == {
        unit(api, "health_centre"),
        gid("Unit", api.district.communities[0]["community"]),
    }
    assert routing["visibleToYou"] == (payload["case"] is not None)
    assert number_of(unit(api, "police:donghu")) == api.district.units["police:donghu"]


ASSIGN = """mutation($case: ID!, $staff: ID!) { assignCaseWorker(case: $case, staff: $staff) {
  errors { code field } } }"""
END = """mutation($case: ID!, $staff: ID!) { endCaseAssignment(case: $case, staff: $staff) {
  errors { code field } } }"""
DIRECTORY = """query($id: ID!) { node(id: $id) { ... on Unit {
  staff { id displayName roles active } } } }"""


async def test_the_lead_unit_runs_its_team(api: Api) -> None:
    """The police station leads the high-risk joint team: it takes a worker off the case and
    puts one on, choosing from a unit's staff directory."""
    case = gid("Case", api.district.records[0]["high_case"])
    counselor = gid("Staff", api.district.staff["counselor"])
    centre = await api.data("police.donghu", DIRECTORY, {"id": unit(api, "health_centre")})
    directory = {s["id"]: s for s in centre["node"]["staff"]}
    assert directory[counselor]["roles"] == ["COUNSELLOR"] and directory[counselor]["active"]

    ended = await api.data("police.donghu", END, {"case": case, "staff": counselor})
    assert ended["endCaseAssignment"]["errors"] == []
    again = await api.data("police.donghu", END, {"case": case, "staff": counselor})
    assert again["endCaseAssignment"]["errors"] == [{"code": "NOT_FOUND", "field": ["staff"]}]
    put = await api.data("police.donghu", ASSIGN, {"case": case, "staff": counselor})
    assert put["assignCaseWorker"]["errors"] == []


async def test_a_co_handling_unit_does_not_staff_the_case(api: Api) -> None:
    """The social worker works the medium-risk case (assigned) but the governance centre leads
    it: only the lead unit, or the governance centre for its area, may assign."""
    case = gid("Case", api.district.records[0]["medium_case"])
    grid_worker = gid("Staff", api.district.staff["grid.donghu"])
    refused = await api.data("social.donghu", ASSIGN, {"case": case, "staff": grid_worker})
    assert refused["assignCaseWorker"]["errors"][0]["code"] == "FORBIDDEN"
    social = gid("Staff", api.district.staff["social.donghu"])
    refused = await api.data("social.donghu", END, {"case": case, "staff": social})
    assert refused["endCaseAssignment"]["errors"][0]["code"] == "FORBIDDEN"
    ended = await api.data("zongzhi", END, {"case": case, "staff": social})
    assert ended["endCaseAssignment"]["errors"] == []


CONCERN = """mutation($in: RaiseConcernInput!) { raiseConcern(input: $in) {
  alert { id status } errors { code field } } }"""
FOLLOW = """query($id: ID!) { node(id: $id) { ... on Alert {
  status riskLevel summary redactedFields } } }"""


async def test_a_volunteer_s_concern_about_a_shidu_family_reaches_the_association(
    api: Api,
) -> None:
    member = gid("Person", api.district.records[0]["shidu_member"])
    raised = await api.data(
        "volunteer.li",
        CONCERN,
        {
            "in": {
                "person": member,
                "kind": "MOOD",
                "urgency": "LOW",
                "text": "节前探访时老人哭了很久",
            }
        },
    )
    payload = raised["raiseConcern"]
    assert payload["errors"] == [] and payload["alert"]["status"] == "OPEN"
    alert = payload["alert"]["id"]
    association = (await api.data("jisheng", FOLLOW, {"id": alert}))["node"]
    assert association is not None and association["summary"].startswith("【情绪低落】")
    # the volunteer follows its status, not what it says
    mine = (await api.data("volunteer.li", FOLLOW, {"id": alert}))["node"]
    assert mine is not None and mine["status"] == "OPEN" and mine["summary"] is None
    assert "summary" in mine["redactedFields"]
    acked = await api.data("jisheng", ACK, {"id": alert})
    assert acked["acknowledgeAlert"]["errors"] == []
    assert (await api.data("volunteer.li", FOLLOW, {"id": alert}))["node"]["status"] == (
        "ACKNOWLEDGED"
    )


async def test_a_concern_needs_someone_you_serve(api: Api) -> None:
    stranger = gid("Person", api.district.records[0]["adult"])
    refused = await api.data(
        "volunteer.li", CONCERN, {"in": {"person": stranger, "kind": "OTHER", "urgency": "LOW"}}
    )
    assert refused["raiseConcern"]["errors"] == [{"code": "NOT_FOUND", "field": ["person"]}]
    assert refused["raiseConcern"]["alert"] is None


async def test_a_concern_reaches_only_the_association_serving_the_family(api: Api) -> None:
    """Another family-planning association, serving the other street, is not told: being sent
    the alert would tell it that this person's family is a 失独 family (review finding)."""
    from sqlalchemy import select

    from domain import models as m
    from domain.session import system_session
    from domain.units import UnitKind
    from tests.builders import insert_unit

    async with system_session(api.engine, reason="test: a second association") as s:
        xishan = (
            await s.execute(select(m.Unit).where(m.Unit.id == api.district.units["street:xishan"]))
        ).scalar_one()
        other = await insert_unit(
            s, name="西山计生协会", kind=UnitKind.FAMILY_PLANNING, parent=xishan
        )
        other.area_unit_id = xishan.id
        await s.commit()
        other_id = other.id
    member = gid("Person", api.district.records[0]["shidu_member"])
    raised = await api.data(
        "volunteer.li", CONCERN, {"in": {"person": member, "kind": "MOOD", "urgency": "LOW"}}
    )
    alert_id = number_of(raised["raiseConcern"]["alert"]["id"])
    async with system_session(api.engine, reason="test: where the concern went") as s:
        t = m.AlertTarget
        went = set((await s.execute(select(t.unit_id).where(t.alert_id == alert_id))).scalars())
    assert api.district.units["jisheng"] in went and other_id not in went


async def test_an_overdue_screening_signal_stays_with_the_school(api: Api) -> None:
    """A screening alert with no case is re-armed at the school, never escalated to the duty
    officer: its tier alone would tell them a child answered the self-harm item."""
    from datetime import UTC, datetime, timedelta

    from sqlalchemy import select

    from domain import models as m
    from domain.alerts import Alert
    from domain.cases import RiskLevel, SourceChannel
    from domain.session import system_session

    school = api.district.units["school2"]
    async with system_session(api.engine, reason="test: an overdue screening signal") as s:
        alert = Alert.raised(
            channel=SourceChannel.SCHOOL_SCREENING,
            risk=RiskLevel.HIGH,
            summary=None,
            area_unit_id=school,
            owner_unit_id=school,
            at=datetime.now(UTC) - timedelta(hours=2),
            within=timedelta(minutes=30),
            person_id=api.district.records[0]["high_subject"],
        )
        s.add(alert)
        await s.commit()
        alert_id = alert.id
    assert await escalate_overdue(api.engine) >= 1
    async with system_session(api.engine, reason="test: where it is now") as s:
        now = (await s.execute(select(m.Alert).where(m.Alert.id == alert_id))).scalar_one()
    assert now.target_unit_id == school and now.status.value == "escalated"
    assert now.ack_deadline > datetime.now(UTC)
    assert await alert_as(api, "duty", gid("Alert", alert_id)) is None


async def test_only_the_owner_dismisses_a_joint_team_s_alert(api: Api) -> None:
    alert = await make_alert(api, risk="HIGH")  # the police station owns it; the grid is told
    refused = await api.data("grid.donghu", DISMISS, {"id": alert, "r": "误报"})
    assert refused["dismissAlert"]["errors"] == [{"code": "FORBIDDEN", "field": ["id"]}]
    done = await api.data("police.donghu", DISMISS, {"id": alert, "r": "民警上门核实，系误报"})
    assert done["dismissAlert"]["errors"] == []
