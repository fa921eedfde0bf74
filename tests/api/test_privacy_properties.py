"""Property: for random viewers and random valid queries over the schema, no field of a class
the viewer may not read ever comes back non-null.

The oracle is independent of the implementation: the hand-written expectation table of the
matrix test for the demo records it names, plus rules that hold for any record ("police never
read narrative", "administrators see no person at all").
"""

from __future__ import annotations

import base64
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.api.test_privacy_matrix import (
    CASE_CLASSES,
    CASES,
    EXPECTED,
    FAMILIES,
    FAMILY_CLASSES,
    PERSON_CLASSES,
    PERSONS,
)
from tests.conftest import Api

SCALARS: dict[str, list[str]] = {
    "Person": [f for fs in PERSON_CLASSES.values() for f in fs if f != "residenceUnit"],
    "Case": [f for fs in CASE_CLASSES.values() for f in fs if f != "leadUnit"] + ["closedAt"],
    "Family": ["createdAt", "specialType", "circumstances"],
    "FamilyMember": ["relationship"],
    "Intervention": ["kind", "performedAt", "notes", "outcome"],
    "Guardian": ["relationship"],
    "Unit": ["name", "kind"],
    "Alert": ["channel", "riskLevel", "status", "summary", "raisedAt"],
}
LINKS: dict[str, dict[str, str]] = {
    "Person": {
        "residenceUnit": "Unit",
        "cases": "Case",
        "families": "FamilyMember",
        "guardians": "Guardian",
    },
    "Case": {
        "subject": "Person",
        "family": "Family",
        "leadUnit": "Unit",
        "interventions": "Intervention",
    },
    "Family": {"members": "FamilyMember", "residenceUnit": "Unit"},
    "FamilyMember": {"person": "Person", "family": "Family"},
    "Intervention": {"case": "Case", "family": "Family"},
    "Guardian": {"person": "Person"},
    "Unit": {},
    "Alert": {"person": "Person", "case": "Case"},
}
ROOTS = {
    "persons": "Person",
    "cases": "Case",
    "families": "Family",
    "interventions": "Intervention",
    "alerts": "Alert",
}
ACCOUNTS = sorted(EXPECTED)

NEVER: dict[str, set[str]] = {
    # account → "Type.field" that must always be null, whatever the record
    "police.donghu": {
        "Case.presentingProblem",
        "Case.supportPlan",
        "Case.diagnosis",
        "Intervention.notes",
        "Intervention.outcome",
        "Alert.summary",
    },
    "partner.chenguang": {"Case.diagnosis", "Person.idNumber", "Family.circumstances"},
    "social.donghu": {"Person.idNumber", "Case.diagnosis"},
    "grid.donghu": {"Person.idNumber", "Case.diagnosis", "Person.sensitiveCategories"},
    "volunteer.li": {"Person.idNumber", "Family.circumstances", "Family.specialType"},
}
NOTHING_PERSONAL = {"admin", "auditor", "leader", "office"}


@st.composite
def selection(draw: st.DrawFn, type_name: str, depth: int) -> str:
    # Every scalar, in a random order: the shape (roots, nesting, page sizes) is what varies, and
    # asking for everything gives a leak the most chances to show.
    fields = draw(st.permutations(SCALARS[type_name]))
    parts = ["__typename", "id", *fields]
    if type_name != "Unit":
        parts.append("redactedFields")
    if depth > 0 and LINKS[type_name]:
        links = draw(st.lists(st.sampled_from(sorted(LINKS[type_name])), unique=True, max_size=2))
        for link in links:
            parts.append(f"{link} {{ {draw(selection(LINKS[type_name][link], depth - 1))} }}")
    return " ".join(parts)


KINDS = PERSONS + CASES + FAMILIES


@st.composite
def query(draw: st.DrawFn) -> tuple[str, list[str]]:
    """A document, and the demo record kinds whose ids fill ``$ids`` (for the ``nodes`` root)."""
    depth = st.integers(min_value=0, max_value=3)
    if draw(st.booleans()):
        kinds = draw(st.lists(st.sampled_from(KINDS), min_size=1, max_size=6, unique=True))
        fragments = " ".join(
            f"... on {t} {{ {draw(selection(t, draw(depth)))} }}"
            for t in ("Person", "Case", "Family")
        )
        return f"query($ids: [ID!]!) {{ nodes(ids: $ids) {{ {fragments} }} }}", kinds
    root = draw(st.sampled_from(sorted(ROOTS)))
    first = draw(st.integers(min_value=1, max_value=15))
    body = draw(selection(ROOTS[root], draw(depth)))
    return f"{{ {root}(first: {first}) {{ edges {{ node {{ {body} }} }} }} }}", []


def _known(api: Api) -> dict[str, tuple[str, dict[str, list[str]]]]:
    known = {}
    for kind, number in api.district.records[0].items():
        if kind in PERSONS:
            known[base64.b64encode(f"Person:{number}".encode()).decode()] = (kind, PERSON_CLASSES)
        elif kind in CASES:
            known[base64.b64encode(f"Case:{number}".encode()).decode()] = (kind, CASE_CLASSES)
        elif kind in FAMILIES:
            known[base64.b64encode(f"Family:{number}".encode()).decode()] = (kind, FAMILY_CLASSES)
    return known


def _objects(value: Any) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    if isinstance(value, dict):
        if "__typename" in value:
            found.append(value)
        for v in value.values():
            found += _objects(v)
    elif isinstance(value, list):
        for v in value:
            found += _objects(v)
    return found


def assert_nothing_unreadable(api: Api, account: str, data: dict[str, Any]) -> None:
    known = _known(api)
    for obj in _objects(data):
        t = obj["__typename"]
        where = f"{account} {t} {obj['id']}"
        if account in NOTHING_PERSONAL:
            assert t in ("Unit",), f"{where}: no personal records at all"
        for field in obj.get("redactedFields", []):
            if field in obj:
                assert obj[field] is None, f"{where}: redacted {field} has a value"
        for rule in NEVER.get(account, set()):
            rule_type, field = rule.split(".")
            if rule_type == t and field in obj:
                assert obj[field] in (None, []), f"{where}: {field} must never be readable"
        if obj["id"] in known:
            kind, classes = known[obj["id"]]
            expected = EXPECTED[account].get(kind)
            assert expected is not None, f"{where} ({kind}) must not be visible at all"
            for letter, fields in classes.items():
                if letter not in expected:
                    for field in fields:
                        if field in obj:
                            assert obj[field] is None, f"{where} ({kind}): {field} leaked"


@settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(account=st.sampled_from(ACCOUNTS), generated=query())
async def test_no_unreadable_field_is_ever_returned(
    api: Api, glass_broken: None, account: str, generated: tuple[str, list[str]]
) -> None:
    document, kinds = generated
    records = api.district.records[0]
    type_of = {
        **dict.fromkeys(PERSONS, "Person"),
        **dict.fromkeys(CASES, "Case"),
        **dict.fromkeys(FAMILIES, "Family"),
    }
    ids = [base64.b64encode(f"{type_of[k]}:{records[k]}".encode()).decode() for k in kinds]
    body = await api.gql(account, document, {"ids": ids} if kinds else None)
    errors = body.get("errors") or []
    # Only typed refusals are acceptable errors (deep random queries may exceed the cost limit).
    assert all(e["extensions"]["code"] in {"FORBIDDEN", "QUERY_TOO_EXPENSIVE"} for e in errors), (
        errors
    )
    if body.get("data"):
        assert_nothing_unreadable(api, account, body["data"])
