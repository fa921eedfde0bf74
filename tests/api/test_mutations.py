"""Writes through the GraphQL API: typed errors, all-or-nothing, no hint of hidden records."""

from __future__ import annotations

import base64
from typing import Any

from sqlalchemy import func, select

from domain import models as m
from domain.session import system_session
from domain.values import id_check_char
from tests.builders import make_person
from tests.conftest import Api

CREATE_PERSON = """
mutation($input: CreatePersonInput!) {
  createPerson(input: $input) {
    person { id name phone idNumber birthDate redactedFields residenceUnit { name } }
    errors { code message field }
  }
}"""


def gid(type_name: str, number: int) -> str:
    return base64.b64encode(f"{type_name}:{number}".encode()).decode()


def valid_id_number(born: str = "19800101", seq: str = "123") -> str:
    body = f"110105{born}{seq}"
    return body + id_check_char(body)


async def person_count(api: Api) -> int:
    async with system_session(api.engine, reason="test assertion") as s:
        return int((await s.execute(select(func.count()).select_from(m.Person))).scalar_one())


def grid_unit(api: Api, index: int = 0) -> str:
    return gid("Unit", api.district.communities[index]["grid"])


async def test_create_person_in_jurisdiction(api: Api) -> None:
    number = valid_id_number()
    data = await api.data(
        "grid.donghu",
        CREATE_PERSON,
        {
            "input": {
                "name": "测试人",
                "gender": "MALE",
                "residenceUnit": grid_unit(api),
                "idNumber": number.lower() if number.endswith("X") else number,
                "phone": "+86 139-0000-0000",
                "address": "演示路1号",
            }
        },
    )
    payload = data["createPerson"]
    assert payload["errors"] == []
    person = payload["person"]
    assert person["name"] == "测试人" and person["phone"] == "13900000000"
    assert person["birthDate"] == "1980-01-01", "birth date derived from the ID number"
    assert person["idNumber"] is None and "idNumber" in person["redactedFields"]


async def test_invalid_input_reports_every_error_and_writes_nothing(api: Api) -> None:
    before = await person_count(api)
    bad_check = valid_id_number()[:-1] + ("0" if valid_id_number()[-1] != "0" else "1")
    data = await api.data(
        "grid.donghu",
        CREATE_PERSON,
        {
            "input": {
                "name": "名" * 51,
                "gender": "FEMALE",
                "residenceUnit": grid_unit(api),
                "idNumber": bad_check,
                "phone": "12345",
            }
        },
    )
    payload = data["createPerson"]
    assert payload["person"] is None
    codes = {(e["code"], tuple(e["field"])) for e in payload["errors"]}
    assert codes == {
        ("TOO_LONG", ("name",)),
        ("INVALID_ID_NUMBER", ("idNumber",)),
        ("INVALID_PHONE", ("phone",)),
    }
    assert all(e["message"] for e in payload["errors"])
    assert bad_check not in str(payload), "errors never echo personal data"
    assert await person_count(api) == before


async def test_bad_enum_is_refused_before_execution(api: Api) -> None:
    body = await api.gql(
        "grid.donghu",
        CREATE_PERSON,
        {"input": {"name": "测试", "gender": "ROBOT", "residenceUnit": grid_unit(api)}},
    )
    assert body["errors"] and body.get("data") is None


async def test_create_outside_jurisdiction_is_forbidden(api: Api) -> None:
    before = await person_count(api)
    data = await api.data(
        "grid.donghu",
        CREATE_PERSON,
        {"input": {"name": "测试", "gender": "MALE", "residenceUnit": grid_unit(api, 3)}},
    )
    assert data["createPerson"]["errors"][0]["code"] == "FORBIDDEN"
    volunteer = await api.data(
        "volunteer.li",
        CREATE_PERSON,
        {"input": {"name": "测试", "gender": "MALE", "residenceUnit": grid_unit(api)}},
    )
    assert volunteer["createPerson"]["errors"][0]["code"] == "FORBIDDEN"
    assert await person_count(api) == before


UPDATE_PERSON = """
mutation($id: ID!, $input: UpdatePersonInput!) {
  updatePerson(id: $id, input: $input) { person { id phone } errors { code field message } }
}"""


async def test_update_of_hidden_record_looks_like_missing(api: Api) -> None:
    async with system_session(api.engine, reason="test setup") as s:
        hidden = (
            (
                await s.execute(
                    select(m.Person.id).where(
                        m.Person.residence_unit_id == api.district.communities[3]["grid"]
                    )
                )
            )
            .scalars()
            .first()
        )
    assert hidden is not None
    results = []
    for target in (gid("Person", hidden), gid("Person", 99_999_999)):
        data = await api.data(
            "grid.donghu", UPDATE_PERSON, {"id": target, "input": {"phone": "13900000001"}}
        )
        results.append(data["updatePerson"])
    assert results[0] == results[1]
    assert results[0]["errors"][0]["code"] == "NOT_FOUND"
    wrong_type = await api.data("grid.donghu", UPDATE_PERSON, {"id": gid("Case", 1), "input": {}})
    assert wrong_type["updatePerson"]["errors"][0]["code"] == "INVALID_ID"


OPEN_CASE = """
mutation($input: OpenCaseInput!) {
  openCase(input: $input) { case { id status riskLevel presentingProblem subject { id } } errors { code field } }
}"""
CHANGE_STATUS = """
mutation($id: ID!, $status: CaseStatus!, $reason: String) {
  changeCaseStatus(id: $id, status: $status, reason: $reason) {
    case { id status closedAt closureOutcome statusHistory { fromStatus toStatus reason } }
    errors { code field message }
  }
}"""


async def test_case_lifecycle(api: Api) -> None:
    subject = await make_person(api, name="个案对象")
    opened = (
        await api.data(
            "social.donghu",
            OPEN_CASE,
            {
                "input": {
                    "subject": subject,
                    "sourceChannel": "WALK_IN",
                    "riskLevel": "LOW",
                    "presentingProblem": "情绪困扰",
                }
            },
        )
    )["openCase"]
    assert opened["errors"] == []
    case = opened["case"]
    assert case["status"] == "INTAKE" and case["subject"]["id"] == subject
    # intake → active is not a legal step
    bad = await api.data("social.donghu", CHANGE_STATUS, {"id": case["id"], "status": "ACTIVE"})
    assert bad["changeCaseStatus"]["errors"][0]["code"] == "INVALID_TRANSITION"
    for status in ("ASSESSING", "ACTIVE"):
        step = await api.data("social.donghu", CHANGE_STATUS, {"id": case["id"], "status": status})
        assert step["changeCaseStatus"]["errors"] == []
    no_reason = await api.data(
        "social.donghu", CHANGE_STATUS, {"id": case["id"], "status": "CLOSED"}
    )
    assert no_reason["changeCaseStatus"]["errors"][0]["code"] == "REQUIRED"
    closed = await api.data(
        "social.donghu", CHANGE_STATUS, {"id": case["id"], "status": "CLOSED", "reason": "目标达成"}
    )
    c = closed["changeCaseStatus"]["case"]
    assert c["status"] == "CLOSED" and c["closedAt"] and c["closureOutcome"] == "目标达成"
    assert [(h["fromStatus"], h["toStatus"]) for h in c["statusHistory"]] == [
        ("INTAKE", "ASSESSING"),
        ("ASSESSING", "ACTIVE"),
        ("ACTIVE", "CLOSED"),
    ]
    # A grid worker of another grid cannot touch it, and cannot tell it exists.
    other = await api.data("grid.donghu", CHANGE_STATUS, {"id": case["id"], "status": "ASSESSING"})
    assert other["changeCaseStatus"] == {
        "case": None,
        "errors": [{"code": "NOT_FOUND", "field": None, "message": "记录不存在或无权访问"}],
    }


async def test_intervention_and_alert(api: Api) -> None:
    subject = await make_person(api, name="个案对象")
    case_id = (
        await api.data(
            "social.donghu",
            OPEN_CASE,
            {"input": {"subject": subject, "sourceChannel": "GRID_REPORT", "riskLevel": "MEDIUM"}},
        )
    )["openCase"]["case"]["id"]
    recorded = await api.data(
        "social.donghu",
        """
      mutation($input: RecordInterventionInput!) {
        recordIntervention(input: $input) { intervention { id kind notes case { id } } errors { code } }
      }""",
        {"input": {"case": case_id, "kind": "HOME_VISIT", "notes": "入户走访"}},
    )
    assert recorded["recordIntervention"]["errors"] == []
    assert recorded["recordIntervention"]["intervention"]["case"]["id"] == case_id
    # The police of the street are not on this medium-risk case: not found.
    police = await api.data(
        "police.donghu",
        """
      mutation($input: RecordInterventionInput!) {
        recordIntervention(input: $input) { intervention { id } errors { code } }
      }""",
        {"input": {"case": case_id, "kind": "HOME_VISIT"}},
    )
    assert police["recordIntervention"]["errors"][0]["code"] == "NOT_FOUND"
    raised = await api.data(
        "hotline",
        """
      mutation($input: RaiseAlertInput!) {
        raiseAlert(input: $input) { alert { id status riskLevel ackDeadline raisedAt summary } errors { code } }
      }""",
        {
            "input": {
                "channel": "HOTLINE_96525",
                "riskLevel": "HIGH",
                "areaUnit": grid_unit(api),
                "summary": "来电求助",
            }
        },
    )
    alert = raised["raiseAlert"]["alert"]
    assert raised["raiseAlert"]["errors"] == [] and alert["status"] == "OPEN"
    assert alert["summary"] == "来电求助", "the hotline sees what it created"
    ack = await api.data(
        "grid.donghu",
        """
      mutation($id: ID!) { acknowledgeAlert(id: $id) { alert { status acknowledgedAt } errors { code } } }
    """,
        {"id": alert["id"]},
    )
    assert ack["acknowledgeAlert"]["alert"]["status"] == "ACKNOWLEDGED"
    again = await api.data(
        "grid.donghu",
        """
      mutation($id: ID!) { acknowledgeAlert(id: $id) { alert { status } errors { code } } }
    """,
        {"id": alert["id"]},
    )
    assert again["acknowledgeAlert"]["errors"][0]["code"] == "INVALID_TRANSITION"


async def test_family_membership(api: Api) -> None:
    person = await make_person(api, name="个案对象")
    fam = await api.data(
        "social.donghu",
        """
      mutation($input: CreateFamilyInput!) { createFamily(input: $input) { family { id } errors { code } } }
    """,
        {"input": {"residenceUnit": grid_unit(api, 1), "circumstances": "单亲家庭"}},
    )
    family_id = fam["createFamily"]["family"]["id"]
    added = await api.data(
        "social.donghu",
        """
      mutation($input: AddFamilyMemberInput!) {
        addFamilyMember(input: $input) { member { relationship person { id } family { id } } errors { code } }
      }""",
        {"input": {"family": family_id, "person": person, "relationship": "HEAD"}},
    )
    member: dict[str, Any] = added["addFamilyMember"]["member"]
    assert member["person"]["id"] == person and member["family"]["id"] == family_id
    dup = await api.data(
        "social.donghu",
        """
      mutation($input: AddFamilyMemberInput!) { addFamilyMember(input: $input) { member { relationship } errors { code } } }
    """,
        {"input": {"family": family_id, "person": person, "relationship": "HEAD"}},
    )
    assert dup["addFamilyMember"]["errors"][0]["code"] == "CONFLICT"


CREATE_STAFF = """
mutation($input: CreateStaffInput!) {
  createStaff(input: $input) { staff { id username unit { name } active } errors { code field } }
}"""


async def test_admin_manages_the_directory_and_a_disabled_account_stops_working(api: Api) -> None:
    unit = await api.data(
        "admin",
        """
      mutation($input: CreateUnitInput!) { createUnit(input: $input) { unit { id name kind parent { name } } errors { code } } }
    """,
        {
            "input": {
                "name": "东湖第3社区",
                "kind": "COMMUNITY",
                "parent": gid("Unit", api.district.units["street:donghu"]),
            }
        },
    )
    created = unit["createUnit"]["unit"]
    assert created["parent"]["name"] == "东湖街道" and created["kind"] == "COMMUNITY"
    username = f"worker.{api.backend}"
    staff = await api.data(
        "admin",
        CREATE_STAFF,
        {
            "input": {
                "username": username,
                "displayName": "新网格员",
                "unit": created["id"],
                "roles": ["GRID_WORKER"],
            }
        },
    )
    assert staff["createStaff"]["errors"] == []
    new = staff["createStaff"]["staff"]
    assert new["username"] == username and new["unit"]["name"] == "东湖第3社区"
    dup = await api.data(
        "admin",
        CREATE_STAFF,
        {
            "input": {
                "username": username,
                "displayName": "重复",
                "unit": created["id"],
                "roles": ["GRID_WORKER"],
            }
        },
    )
    assert dup["createStaff"]["errors"][0]["code"] == "CONFLICT"
    sod = await api.data(
        "admin",
        CREATE_STAFF,
        {
            "input": {
                "username": "both.roles",
                "displayName": "x",
                "unit": created["id"],
                "roles": ["ADMIN", "POLICE"],
            }
        },
    )
    assert sod["createStaff"]["errors"] == [{"code": "INVALID", "field": ["roles"]}]
    denied = await api.data(
        "grid.donghu",
        CREATE_STAFF,
        {
            "input": {
                "username": "sneaky",
                "displayName": "x",
                "unit": created["id"],
                "roles": ["ADMIN"],
            }
        },
    )
    assert denied["createStaff"]["errors"][0]["code"] == "FORBIDDEN"
    # The new account works until an administrator disables it; then its token stops working.
    api.district.staff[username] = int(base64.b64decode(new["id"]).decode().split(":")[1])
    assert (await api.data(username, "{ viewer { roles } }"))["viewer"]["roles"] == ["GRID_WORKER"]
    off = await api.data(
        "admin",
        """
      mutation($id: ID!) { setStaffActive(id: $id, active: false) { staff { active } errors { code } } }
    """,
        {"id": new["id"]},
    )
    assert off["setStaffActive"]["staff"]["active"] is False
    response = await api.post(
        {"query": "{ viewer { roles } }"}, {"Authorization": f"Bearer {api.token(username)}"}
    )
    assert response.status_code == 401
