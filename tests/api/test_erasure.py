"""Erasure by crypto-shredding, through the API: afterwards the person's sealed fields are
unreadable, lookups by blind index find nothing, the skeleton stays, and the erasure is logged."""

from __future__ import annotations

import base64

from sqlalchemy import func, select

from domain import models as m
from domain.session import system_session
from domain.values import id_check_char
from tests.conftest import Api


def gid(type_name: str, number: int) -> str:
    return base64.b64encode(f"{type_name}:{number}".encode()).decode()


ERASE = """mutation($id: ID!, $r: String!) { erasePerson(id: $id, reason: $r) {
  erased errors { code field } } }"""
LOOKUP = """query($n: String) { lookupPersons(idNumber: $n) { inScope } }"""
READ = """query($id: ID!) { node(id: $id) { ... on Person { name phone gender
  cases { id riskLevel } } } }"""


async def test_an_erased_person_is_unreadable_and_unfindable(api: Api) -> None:
    body = "99010319700101777"
    number = body + id_check_char(body)
    created = await api.data(
        "social.donghu",
        """mutation($u: ID!, $n: String!) { createPerson(input: {name: "待删除", gender: MALE,
        birthDate: "1970-01-01", idNumber: $n, phone: "13911112222", residenceUnit: $u}) {
        person { id } errors { code } } }""",
        {"u": gid("Unit", api.district.communities[1]["grid"]), "n": number},
    )
    person = created["createPerson"]["person"]["id"]
    await api.data(
        "social.donghu",
        """mutation($s: ID!) { openCase(input: {subject: $s, sourceChannel: GRID_REPORT,
        riskLevel: LOW, presentingProblem: "独居"}) { errors { code } } }""",
        {"s": person},
    )
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

    seen = (await api.data("social.donghu", READ, {"id": person}))["node"]
    assert seen["name"] is None and seen["phone"] is None, "sealed fields are gone for good"
    assert seen["gender"] == "MALE" and len(seen["cases"]) == 1, "the skeleton stays"
    assert (await api.data("grid.donghu", LOOKUP, {"n": number}))["lookupPersons"] == []
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
    assert keys == 0
    assert ("admin", "erase: 删除申请 2026-001") in logged
