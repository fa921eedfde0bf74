"""Regression tests for issues an independent review found (each was reproduced first)."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from domain.access_log import AccessEvent
from domain.referrals import ReferralStatus
from domain.session import system_session
from tests.builders import insert_consent, insert_referral
from tests.conftest import Api


def gid(type_name: str, number: int) -> str:
    return base64.b64encode(f"{type_name}:{number}".encode()).decode()


PERSON = "query($id: ID!) { node(id: $id) { ... on Person { name phone idNumber maskedIdNumber birthDate sensitiveCategories categories redactedFields } } }"


async def test_masked_id_number_is_not_given_with_the_birth_date(api: Api) -> None:
    adult = gid("Person", api.district.records[0]["adult"])
    seen = (await api.data("grid.donghu", PERSON, {"id": adult}))["node"]
    assert seen["birthDate"] and seen["maskedIdNumber"] is None and seen["idNumber"] is None
    police = (
        await api.data(
            "police.donghu", PERSON, {"id": gid("Person", api.district.records[0]["high_subject"])}
        )
    )["node"]
    assert police["maskedIdNumber"].count("*") == 8


async def test_a_stale_broad_referral_does_not_widen_a_valid_narrow_one(api: Api) -> None:
    records = api.district.records[0]
    async with system_session(api.engine, reason="test: a stale referral") as s:
        consent = await insert_consent(
            s,
            person=records["referred_subject"],
            recipient=api.district.units["partner"],
            purpose="old",
            scope="basic,identity,contact,id_number,clinical",
            withdrawn_at=datetime.now(UTC),
        )
        await insert_referral(
            s,
            case=records["referred_case"],
            person=records["referred_subject"],
            from_unit=api.district.units["partner"],
            to_unit=api.district.units["partner"],
            consent=consent.id,
            purpose="old",
            shared="basic,identity,contact,id_number,clinical",
            status=ReferralStatus.ACCEPTED,
            expires_at=datetime.now(UTC) - timedelta(days=1),
        )
        await s.commit()
    person = (
        await api.data(
            "partner.chenguang", PERSON, {"id": gid("Person", records["referred_subject"])}
        )
    )["node"]
    assert person["name"] is None and person["phone"] is None and person["idNumber"] is None
    case = (
        await api.data(
            "partner.chenguang",
            "query($id: ID!) { node(id: $id) { ... on Case { status diagnosis presentingProblem } } }",
            {"id": gid("Case", records["referred_case"])},
        )
    )["node"]
    assert case["status"] and case["presentingProblem"] and case["diagnosis"] is None


async def test_a_family_type_shows_only_to_its_owner_and_cannot_be_filtered_on(api: Api) -> None:
    query = "{ families(first: 50) { edges { node { specialType redactedFields } } } }"
    for user in ("counselor", "social.donghu", "grid.donghu"):
        for e in (await api.data(user, query))["families"]["edges"]:
            assert e["node"]["specialType"] is None, user
    body = await api.gql(
        "social.donghu", "{ families(filter: {specialType: BEREAVED_ONLY_CHILD}) { totalCount } }"
    )
    assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    owner = await api.data(
        "jisheng", "{ families(filter: {specialType: BEREAVED_ONLY_CHILD}) { totalCount } }"
    )
    assert owner["families"]["totalCount"] >= 4


async def test_a_guardian_is_not_revealed_through_a_withheld_guardianship(api: Api) -> None:
    child = gid("Person", api.district.records[0]["child_u14"])
    query = "query($id: ID!) { node(id: $id) { ... on Person { guardians { relationship redactedFields person { name phone } } } } }"
    for g in (await api.data("social.donghu", query, {"id": child}))["node"]["guardians"]:
        assert g["relationship"] is None and g["person"] is None


async def test_opening_a_case_does_not_widen_the_openers_access(api: Api) -> None:
    # The counsellor sees this adult at basic level only (jurisdiction).
    subject = gid("Person", api.district.records[1]["adult"])
    before = (await api.data("counselor", PERSON, {"id": subject}))["node"]
    assert before["name"] is None
    opened = await api.data(
        "counselor",
        """mutation($s: ID!) { openCase(input: {subject: $s,
        sourceChannel: WALK_IN, riskLevel: MEDIUM}) { case { id } errors { code } } }""",
        {"s": subject},
    )
    assert opened["openCase"]["errors"] == []
    after = (await api.data("counselor", PERSON, {"id": subject}))["node"]
    assert after["name"] is None and after["idNumber"] is None


async def test_adding_a_family_member_needs_to_know_who_they_are(api: Api) -> None:
    family = gid("Family", api.district.records[0]["shidu_family"])
    smd = gid("Person", api.district.records[0]["smd"])  # the grid worker cannot read their name
    body = await api.data(
        "grid.donghu",
        """mutation($f: ID!, $p: ID!) { addFamilyMember(input:
        {family: $f, person: $p, relationship: OTHER}) { member { id } errors { code field } } }""",
        {"f": family, "p": smd},
    )
    assert body["addFamilyMember"]["errors"] == [{"code": "FORBIDDEN", "field": ["person"]}]
    volunteer = (await api.data("volunteer.li", PERSON, {"id": smd}))["node"]
    assert volunteer is None


async def test_updating_categories_keeps_the_ones_the_author_cannot_see(api: Api) -> None:
    smd = api.district.records[1]["smd"]
    body = await api.data(
        "social.donghu",
        """mutation($id: ID!) {
        updatePerson(id: $id, input: {categories: [LOW_INCOME]}) { person { categories } errors { code } } }""",
        {"id": gid("Person", smd)},
    )
    assert body["updatePerson"]["errors"] == []
    psych = (await api.data("psychiatrist", PERSON, {"id": gid("Person", smd)}))["node"]
    assert psych["sensitiveCategories"] == ["SEVERE_MENTAL_DISORDER"]
    assert psych["categories"] == ["LOW_INCOME"]


async def test_break_glass_validates_before_it_looks(api: Api) -> None:
    query = """mutation($c: ID!) { breakGlass(case: $c, reason: "短") { errors { code field } } }"""
    inside = await api.data(
        "police.donghu", query, {"c": gid("Case", api.district.records[1]["low_case"])}
    )
    outside = await api.data(
        "police.donghu", query, {"c": gid("Case", api.district.records[3]["low_case"])}
    )
    missing = await api.data("police.donghu", query, {"c": gid("Case", 99_999_999)})
    assert inside == outside == missing


async def test_searches_and_writes_name_the_person_for_their_history(api: Api) -> None:
    person = await api.plain_person(api.district.records[2]["adult"])
    await api.data(
        "grid.donghu",
        "query($n: String) { lookupPersons(idNumber: $n) { inScope } }",
        {"n": person.id_number},
    )
    async with system_session(api.engine, reason="test") as s:
        searches = (
            (
                await s.execute(
                    select(AccessEvent).where(
                        AccessEvent.kind == "search", AccessEvent.person_id == person.id
                    )
                )
            )
            .scalars()
            .all()
        )
    assert searches


async def test_naive_cursor_times_are_refused_as_invalid(api: Api) -> None:
    import json

    raw = json.dumps(["opened_at:desc", "2026-01-01T00:00:00", 5]).encode()
    cursor = base64.urlsafe_b64encode(raw).decode().rstrip("=")
    body = await api.gql(
        "zongzhi", "query($a: String) { cases(after: $a) { totalCount } }", {"a": cursor}
    )
    assert body["errors"][0]["extensions"]["code"] == "INVALID"
