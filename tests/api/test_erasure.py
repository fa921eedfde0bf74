"""Erasure by crypto-shredding, through the API: afterwards the person's sealed fields are
unreadable, lookups by blind index find nothing, the skeleton stays, and the erasure is logged."""

from __future__ import annotations

import base64
from datetime import date

from sqlalchemy import func, select

from domain import models as m
from domain.base import Base
from domain.sealing import encrypted_columns, sealed_models
from domain.session import system_session
from tests.builders import gid, id_number, insert_assessment, make_case, make_person, number_of
from tests.conftest import Api

ERASE = """mutation($id: ID!, $r: String!) { erasePerson(id: $id, reason: $r) {
  erased errors { code field } } }"""
LOOKUP = """query($n: String) { lookupPersons(idNumber: $n) { inScope } }"""
READ = """query($id: ID!) { node(id: $id) { ... on Person { name phone gender
  cases { id riskLevel } } } }"""


async def test_an_erased_person_is_unreadable_and_unfindable(api: Api) -> None:
    number = id_number("990103", date(1970, 1, 1), 777)
    person = await make_person(
        api,
        name="待删除",
        gender="MALE",
        birthDate="1970-01-01",
        idNumber=number,
        phone="13911112222",
    )
    case = await make_case(api, person, channel="GRID_REPORT", presentingProblem="独居")
    # Text about the person in other tables, all sealed under their key.
    wrote = await api.data(
        "social.donghu",
        """mutation($c: ID!, $p: ID!, $u: ID!) {
          i: recordIntervention(input: {case: $c, kind: HOME_VISIT, notes: "入户：情绪低落待删",
            outcome: "约定下周再访"}) { intervention { notes } errors { code } }
          r: raiseAlert(input: {channel: GRID_REPORT, riskLevel: LOW, areaUnit: $u, person: $p,
            summary: "邻居反映其独居少言待删"}) { errors { code } } }""",
        {"c": case, "p": person, "u": gid("Unit", api.district.communities[1]["grid"])},
    )
    assert wrote["i"] == {"intervention": {"notes": "入户：情绪低落待删"}, "errors": []}
    more = await api.data(
        "social.donghu",
        """mutation($c: ID!) {
          s: changeCaseStatus(id: $c, status: ASSESSING, reason: "开始评估，家属同意待删") {
            errors { code } }
          f: scheduleFollowUp(input: {case: $c, kind: HOME_VISIT, dueAt: "2099-01-01T00:00:00Z"})
            { followUp { id } errors { code } } }""",
        {"c": case},
    )
    assert more["s"]["errors"] == [] and more["f"]["errors"] == []
    dropped = await api.data(
        "social.donghu",
        """mutation($f: ID!) { dropFollowUp(id: $f, reason: "家属拒绝随访待删") { errors { code } } }""",
        {"f": more["f"]["followUp"]["id"]},
    )
    assert dropped["dropFollowUp"]["errors"] == []
    case_number = number_of(case)
    person_number = number_of(person)
    async with system_session(api.engine, reason="test: a counsellor's assessment") as s:
        await insert_assessment(
            s,
            api.app.state.keys,
            person=person_number,
            case=case_number,
            instrument="phq9",
            score=8,
            severity="mild",
            answers=[1, 1, 1, 1, 1, 1, 1, 1, 0],
        )
        await s.commit()
    assert wrote["r"]["errors"] == [], "raised (read back by the area's team, not the writer)"
    assert len((await api.data("grid.donghu", LOOKUP, {"n": number}))["lookupPersons"]) == 1

    refused = await api.data("social.donghu", ERASE, {"id": person, "r": "删除申请 2026-001"})
    assert refused["erasePerson"] == {
        "erased": False,
        "errors": [{"code": "FORBIDDEN", "field": None}],
    }
    no_reason = await api.data("admin", ERASE, {"id": person, "r": " "})
    assert no_reason["erasePerson"]["errors"][0]["field"] == ["reason"]
    missing = await api.data("admin", ERASE, {"id": gid("Person", 99_999_999), "r": "x"})
    assert missing["erasePerson"]["errors"][0]["code"] == "NOT_FOUND"

    done = await api.data("admin", ERASE, {"id": person, "r": "删除申请 2026-001"})
    assert done["erasePerson"] == {"erased": True, "errors": []}

    case_text = """query($id: ID!) { node(id: $id) { ... on Person { cases { id
      presentingProblem } } } }"""
    seen = (await api.data("social.donghu", READ, {"id": person}))["node"]
    assert seen["name"] is None and seen["phone"] is None, "sealed fields are gone for good"
    assert seen["gender"] == "MALE" and len(seen["cases"]) == 1, "the skeleton stays"
    cases = (await api.data("social.donghu", case_text, {"id": person}))["node"]["cases"]
    assert cases[0]["presentingProblem"] is None, "the case's text went with the key"
    texts = await api.data(
        "social.donghu",
        """query($c: ID!) { node(id: $c) { ... on Case {
          interventions { notes outcome kind } } } }""",
        {"c": case},
    )
    assert texts["node"]["interventions"] == [
        {"notes": None, "outcome": None, "kind": "HOME_VISIT"}
    ]
    cleared: set[str] = set()
    async with system_session(api.engine, reason="test: every sealed row of the person") as s:
        for model in sealed_models(Base):
            owned = model.owned_by("person", person_number)
            if owned is None or model is m.Person:
                continue
            for row in (await s.execute(select(model).where(owned))).scalars():
                for column in encrypted_columns(model):
                    assert getattr(row, column) is None, f"{model.__tablename__}.{column}"
                cleared.add(model.__tablename__)
    assert {
        "cases",
        "interventions",
        "assessments",
        "alerts",
        "case_status_changes",
        "follow_ups",
    } <= cleared
    assert (await api.data("grid.donghu", LOOKUP, {"n": number}))["lookupPersons"] == []
    by_phone = await api.data(
        "grid.donghu", 'query { lookupPersons(phone: "13911112222") { inScope } }'
    )
    assert by_phone["lookupPersons"] == []
    # Writing about the person again starts a new record under a new key, readable as such.
    again = await api.data(
        "social.donghu",
        """mutation($id: ID!) { updatePerson(id: $id, input: {name: "新登记"}) {
        person { name phone } errors { code } } }""",
        {"id": person},
    )
    assert again["updatePerson"] == {"person": {"name": "新登记", "phone": None}, "errors": []}
    number_id = int(base64.b64decode(person).decode().split(":")[1])
    async with system_session(api.engine, reason="test assertion") as s:
        keys = (
            await s.execute(
                select(func.count())
                .select_from(m.DataKeyRecord)
                .where(m.DataKeyRecord.owner == f"person:{number_id}")
            )
        ).scalar_one()
        logged = (
            await s.execute(
                select(m.AccessEvent.actor_username, m.AccessEvent.reason).where(
                    m.AccessEvent.person_id == number_id, m.AccessEvent.kind == "write"
                )
            )
        ).all()
    assert keys == 1, "the old key is gone; the new record has its own"
    assert ("admin", "erase: 删除申请 2026-001") in logged


async def test_updates_log_sealed_fields_by_name_only(api: Api) -> None:
    """A keyed hash of an old phone number in the append-only log would outlive erasure."""
    person = await make_person(
        api, name="改号", gender="MALE", birthDate="1971-01-01", phone="13922223333"
    )
    await api.data(
        "social.donghu",
        """mutation($id: ID!) { updatePerson(id: $id, input: {phone: "13944445555"}) {
        errors { code } } }""",
        {"id": person},
    )
    number_id = int(base64.b64decode(person).decode().split(":")[1])
    async with system_session(api.engine, reason="test assertion") as s:
        rows = (
            await s.execute(
                select(m.AccessEvent.fields, m.AccessEvent.changes).where(
                    m.AccessEvent.person_id == number_id, m.AccessEvent.reason == "update"
                )
            )
        ).all()
    assert rows and all("phone" in f and not c for f, c in rows)
