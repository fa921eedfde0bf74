"""Every demo account × every record kind × every field class, through the GraphQL API.

The expectations below are written by hand from PRODUCT.md §4 — not generated from the policy
file — so a wrong policy line fails here. Records are those of community 0 (东湖第1社区) of the
demo district; ``District.records`` names them by kind.

B basic, I identity, N id_number, C contact, S sensitive_category (persons);
A case_admin, R narrative, K clinical (cases); F family_circumstance (families).
"""

from __future__ import annotations

import base64
from typing import Any

import pytest

from tests.conftest import Api

PERSON_CLASSES = {
    "B": ["maskedName", "gender", "ageBand", "categories", "residenceUnit"],
    "I": ["name", "birthDate"],
    "N": ["idNumber", "maskedIdNumber"],
    "C": ["phone", "address"],
    "S": ["sensitiveCategories"],
}
CASE_CLASSES = {
    "A": ["status", "riskLevel", "openedAt", "leadUnit"],
    "R": ["presentingProblem", "supportPlan"],
    "K": ["diagnosis"],
}
FAMILY_CLASSES = {
    "B": ["createdAt", "residenceUnit"],
    "S": ["specialType"],
    "F": ["circumstances"],
}
HAS_DATA = {
    "maskedName",
    "name",
    "idNumber",
    "phone",
    "status",
    "presentingProblem",
    "circumstances",
    "specialType",
    "residenceUnit",
    "leadUnit",
}

PERSONS = [
    "adult",
    "minor",
    "child_u14",
    "guardian",
    "shidu_member",
    "high_subject",
    "medium_subject",
    "low_income",
    "smd",
    "referred_subject",
    "emergency_subject",
]
CASES = ["high_case", "medium_case", "low_case", "smd_case", "referred_case", "emergency_case"]
FAMILIES = ["shidu_family"]

ALL_PERSONS_BASIC = {k: "B" for k in PERSONS}

# account → record kind → visible classes; a kind not listed is not visible at all.
EXPECTED: dict[str, dict[str, str]] = {
    "admin": {},
    "auditor": {},
    "leader": {},
    "office": {},
    "hotline": {},
    "fulian": {},
    "canlian": {},
    "grid.donghu": {
        # jurisdiction: basic; identity and contact of adults without sensitive categories
        **ALL_PERSONS_BASIC,
        "adult": "BIC",
        "guardian": "BIC",
        "medium_subject": "BIC",
        "low_income": "BIC",
        "referred_subject": "BIC",
        "emergency_subject": "BIC",
        "shidu_family": "B",
        # assigned, low risk: case_admin and narrative
        "low_case": "AR",
        "referred_case": "AR",
    },
    "social.donghu": {
        # jurisdiction: basic, identity, contact (minors: basic only)
        **{k: "BIC" for k in PERSONS},
        "minor": "B",
        "child_u14": "B",
        "high_subject": "B",
        "shidu_family": "B",
        # assigned: everything but id_number and clinical; sensitive categories are not its own
        "medium_case": "AR",
    },
    "teacher.school2": {
        "minor": "BIC",  # own student
        "high_subject": "BINCS",  # own student, assigned: everything
        "high_case": "ARK",
    },
    "counselor": {
        **ALL_PERSONS_BASIC,  # jurisdiction: basic
        "high_subject": "BINCS",  # assigned: everything
        "high_case": "ARK",
    },
    "psychiatrist": {
        "smd": "BINCS",  # registered severe-mental-disorder patients: all classes
        "smd_case": "ARK",
    },
    "police.donghu": {
        "high_subject": "BINCS",  # high-risk: basic, identity, id_number, contact (+ SMD if any)
        "high_case": "A",  # never narrative or clinical
        "emergency_subject": "BINC",  # under the break-glass grant
        "emergency_case": "A",
    },
    "zongzhi": {
        **ALL_PERSONS_BASIC,
        "medium_subject": "BIC",
        "emergency_subject": "BIC",  # assigned, medium risk
        **{k: "A" for k in CASES},  # jurisdiction: case_admin of all cases
        "medium_case": "AR",
        "emergency_case": "AR",
    },
    "civil": {"low_income": "BIC"},
    "jisheng": {"shidu_member": "BICS", "shidu_family": "BSF"},
    "volunteer.li": {"shidu_member": "IC", "shidu_family": "B"},
    "partner.chenguang": {"referred_subject": "B", "referred_case": "AR"},
    # the duty officer acts on the alerts that reach it; no person, case or family record
    "duty": {},
}

QUERY = """
query($id: ID!) { node(id: $id) {
  ... on Person { redactedFields maskedName gender ageBand categories residenceUnit { id }
                  name birthDate maskedIdNumber idNumber phone address sensitiveCategories }
  ... on Case { redactedFields status riskLevel openedAt leadUnit { id } presentingProblem
                supportPlan diagnosis }
  ... on Family { redactedFields createdAt residenceUnit { id } specialType circumstances }
} }"""

TYPE_NAMES = {"person": "Person", "case": "Case", "family": "Family"}


def gid(type_name: str, number: int) -> str:
    return base64.b64encode(f"{type_name}:{number}".encode()).decode()


def kind_table(kind: str) -> tuple[str, dict[str, list[str]]]:
    if kind in CASES:
        return "Case", CASE_CLASSES
    if kind in FAMILIES:
        return "Family", FAMILY_CLASSES
    return "Person", PERSON_CLASSES


def check(
    node: dict[str, Any] | None, expected: str | None, classes: dict[str, list[str]], where: str
) -> None:
    if expected is None:
        assert node is None, f"{where}: must not be visible"
        return
    assert node is not None, f"{where}: must be visible"
    redacted = set(node["redactedFields"])
    for letter, fields in classes.items():
        for field in fields:
            if letter in expected:
                assert field not in redacted, f"{where}: {field} ({letter}) withheld"
                if field in HAS_DATA:
                    assert node[field] not in (None, ""), f"{where}: {field} ({letter}) empty"
            else:
                assert node[field] is None, f"{where}: {field} ({letter}) leaked"
                assert field in redacted, f"{where}: {field} ({letter}) not marked redacted"


@pytest.mark.parametrize("account", sorted(EXPECTED))
async def test_matrix(api: Api, glass_broken: None, account: str) -> None:
    records = api.district.records[0]
    for kind in PERSONS + CASES + FAMILIES:
        type_name, classes = kind_table(kind)
        node = (await api.data(account, QUERY, {"id": gid(type_name, records[kind])}))["node"]
        check(node, EXPECTED[account].get(kind), classes, f"{account} × {kind}")


async def test_sensitive_categories_show_only_to_their_owner(api: Api) -> None:
    records = api.district.records[0]
    query = (
        "query($id: ID!) { node(id: $id) { ... on Person { sensitiveCategories redactedFields } } }"
    )
    shidu = gid("Person", records["shidu_member"])
    smd = gid("Person", records["smd"])
    assert (await api.data("jisheng", query, {"id": shidu}))["node"]["sensitiveCategories"] == [
        "BEREAVED_ONLY_CHILD"
    ]
    assert (await api.data("psychiatrist", query, {"id": smd}))["node"]["sensitiveCategories"] == [
        "SEVERE_MENTAL_DISORDER"
    ]
    social = (await api.data("social.donghu", query, {"id": smd}))["node"]
    assert (
        social["sensitiveCategories"] is None and "sensitiveCategories" in social["redactedFields"]
    )


async def test_decisions_do_not_depend_on_the_path(api: Api, glass_broken: None) -> None:
    """The same record seen through lists and nested paths shows exactly what ``node`` shows."""
    records = api.district.records[0]
    by_id = {gid(kind_table(k)[0], v): k for k, v in records.items() if k in PERSONS}
    person_fields = """redactedFields maskedName gender ageBand categories residenceUnit { id }
        name birthDate maskedIdNumber idNumber phone address sensitiveCategories id"""
    nested = f"""{{
      persons(first: 100) {{ edges {{ node {{ {person_fields} }} }} }}
      families(first: 60) {{ edges {{ node {{ members(first: 4) {{ person {{ {person_fields}
          cases(first: 2) {{ id interventions(first: 2) {{ id kind notes }} }} }} }} }} }} }}
      cases(first: 100) {{ edges {{ node {{ subject {{ {person_fields} }} }} }} }}
    }}"""
    for account, expected in EXPECTED.items():
        data = await api.data(account, nested)
        seen: list[dict[str, Any]] = [e["node"] for e in data["persons"]["edges"]]
        seen += [
            m["person"]
            for e in data["families"]["edges"]
            for m in e["node"]["members"]
            if m["person"]
        ]
        seen += [e["node"]["subject"] for e in data["cases"]["edges"] if e["node"]["subject"]]
        for node in seen:
            kind = by_id.get(node["id"])
            if kind is None:
                continue  # another community's or a synthetic person
            check(node, expected.get(kind), PERSON_CLASSES, f"{account} × {kind} (nested)")


async def test_other_communities_are_out_of_jurisdiction(api: Api) -> None:
    query = "query($id: ID!) { node(id: $id) { id } }"
    xishan = api.district.records[2]
    for account in ("grid.donghu", "social.donghu", "police.donghu", "counselor"):
        for kind in ("adult", "high_subject"):
            node = (await api.data(account, query, {"id": gid("Person", xishan[kind])}))["node"]
            assert node is None, f"{account} sees {kind} of 西山"
        node = (await api.data(account, query, {"id": gid("Case", xishan["high_case"])}))["node"]
        assert node is None
