"""A partner system with only ``op:create_alert`` raises alerts and follows those it raised,
and nothing else: not other alerts, not the cases referred to its agency, not any node."""

from __future__ import annotations

import base64
from typing import Any

from tests.api.test_identity import REGISTER, _token
from tests.conftest import Api


def gid(type_name: str, number: int) -> str:
    return base64.b64encode(f"{type_name}:{number}".encode()).decode()


RAISE = """mutation Raise($in: RaiseAlertInput!) { raiseAlert(input: $in) {
  alert { id status riskLevel summary redactedFields person { id cases { id } } }
  errors { code field } } }"""
FOLLOW = """query Mine { alerts(first: 50) { totalCount edges { node { id status summary
  targetUnit { id } redactedFields } } } }"""
SNOOP = "query Snoop($id: ID!) { node(id: $id) { id } }"
CASES = "query Cases { cases(first: 5) { totalCount } }"


async def _client(api: Api, name: str, scopes: list[str]) -> dict[str, str]:
    reg = (
        await api.data(
            "admin",
            REGISTER,
            {
                "in": {
                    "name": name,
                    "unit": gid("Unit", api.district.units["partner"]),
                    "scopes": scopes,
                }
            },
        )
    )["registerPartnerClient"]
    assert reg["errors"] == [], reg
    for document in (RAISE, FOLLOW, SNOOP, CASES):
        registered = await api.data(
            "admin",
            """mutation($d: String!, $c: ID) { registerPersistedQuery(document: $d, client: $c,
            name: "partner alerts") { sha256 errors { code } } }""",
            {"d": document, "c": reg["client"]["id"]},
        )
        assert registered["registerPersistedQuery"]["errors"] == []
    api.app.state.graphql.registries._cache.clear()
    status, issued = await _token(api, reg["client"]["clientId"], reg["clientSecret"])
    assert status == 200, issued
    return {"Authorization": f"Bearer {issued['access_token']}"}


async def _run(api: Api, auth: dict[str, str], document: str, variables: Any = None) -> Any:
    response = await api.post({"query": document, "variables": variables or {}}, auth)
    return response.json()


async def test_a_write_only_client_follows_only_the_alerts_it_raised(api: Api) -> None:
    area = gid("Unit", api.district.communities[0]["grid"])
    writer = await _client(api, "晨光热线对接", ["op:create_alert"])
    other = await _client(api, "另一家机构", ["op:create_alert"])
    raised = await _run(
        api,
        writer,
        RAISE,
        {
            "in": {
                "channel": "HOTLINE_96525",
                "riskLevel": "MEDIUM",
                "areaUnit": area,
                "summary": "来访者反映邻居近期情绪低落，多次提到不想活了",
            }
        },
    )
    payload = raised["data"]["raiseAlert"]
    assert payload["errors"] == [], payload
    alert = payload["alert"]
    assert alert["status"] == "OPEN" and alert["summary"].startswith("来访者")
    await _run(
        api,
        other,
        RAISE,
        {"in": {"channel": "HOTLINE_96525", "riskLevel": "LOW", "areaUnit": area}},
    )

    mine = (await _run(api, writer, FOLLOW))["data"]["alerts"]
    assert mine["totalCount"] == 1 and mine["edges"][0]["node"]["id"] == alert["id"]
    assert mine["edges"][0]["node"]["redactedFields"] == []

    # The team the alert was routed to (medium risk: the governance centre) sees it; the client
    # sees nobody else's.
    team = await api.data("zongzhi", "{ alerts(first: 100) { edges { node { id } } } }")
    assert alert["id"] in {e["node"]["id"] for e in team["alerts"]["edges"]}

    referred = gid("Case", api.district.records[1]["referred_case"])
    for document, variables in (
        (SNOOP, {"id": referred}),
        (SNOOP, {"id": alert["id"]}),
        (CASES, None),
    ):
        body = await _run(api, writer, document, variables)
        assert body.get("data") is None
        assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"


async def test_a_write_only_client_cannot_probe_who_is_referred(api: Api) -> None:
    """Naming a person referred to the agency and naming anyone else get the same answer, and
    nothing about the person comes back nested under the alert."""
    writer = await _client(api, "探测测试", ["op:create_alert"])
    area = gid("Unit", api.district.communities[0]["grid"])
    answers = []
    for person in (api.district.records[1]["referred_subject"], api.district.records[0]["adult"]):
        body = await _run(
            api,
            writer,
            RAISE,
            {
                "in": {
                    "channel": "HOTLINE_96525",
                    "riskLevel": "LOW",
                    "areaUnit": area,
                    "person": gid("Person", person),
                }
            },
        )
        answers.append(body["data"]["raiseAlert"])
    assert answers[0] == answers[1]
    assert answers[0]["errors"][0]["code"] == "NOT_FOUND"
    anonymous = await _run(
        api,
        writer,
        RAISE,
        {"in": {"channel": "HOTLINE_96525", "riskLevel": "LOW", "areaUnit": area}},
    )
    assert anonymous["data"]["raiseAlert"]["alert"]["person"] is None


async def test_recording_interventions_needs_the_read_scope(api: Api) -> None:
    bad = await api.data(
        "admin",
        REGISTER,
        {
            "in": {
                "name": "只写干预",
                "unit": gid("Unit", api.district.units["partner"]),
                "scopes": ["op:record_intervention"],
            }
        },
    )
    assert bad["registerPartnerClient"]["errors"][0]["code"] == "INVALID_SCOPE"


async def test_a_client_without_the_alert_scope_cannot_raise_one(api: Api) -> None:
    reader = await _client(api, "只读对接", ["read:case_admin", "op:read_referred_cases"])
    area = gid("Unit", api.district.communities[0]["grid"])
    body = await _run(
        api,
        reader,
        RAISE,
        {"in": {"channel": "HOTLINE_96525", "riskLevel": "LOW", "areaUnit": area}},
    )
    assert body.get("data") is None and body["errors"][0]["extensions"]["code"] == "FORBIDDEN"
