"""Reading through the GraphQL API: scoping, redaction, pagination, existence leaks."""

from __future__ import annotations

from typing import Any

from tests.conftest import Api

PERSONS = """
query($first: Int, $after: String) {
  persons(first: $first, after: $after) {
    totalCount
    pageInfo { hasNextPage hasPreviousPage endCursor }
    edges { cursor node { id maskedName name phone idNumber sensitiveCategories redactedFields
                          residenceUnit { id name } } }
  }
}"""


async def all_persons(api: Api, user: str) -> list[dict[str, Any]]:
    nodes: list[dict[str, Any]] = []
    after = None
    while True:
        page = (await api.data(user, PERSONS, {"first": 100, "after": after}))["persons"]
        nodes += [e["node"] for e in page["edges"]]
        if not page["pageInfo"]["hasNextPage"]:
            return nodes
        after = page["pageInfo"]["endCursor"]


async def test_unauthenticated_gets_nothing(api: Api) -> None:
    body = await api.gql(None, "{ persons { totalCount } }")
    assert body["data"] is None
    assert body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


async def test_bad_tokens_are_401(api: Api) -> None:
    for header in ("Bearer not-a-token", "Basic abc", "Bearer " + api.token("admin")[:-4] + "AAAA"):
        response = await api.post({"query": "{ viewer { roles } }"}, {"Authorization": header})
        assert response.status_code == 401
        assert response.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


async def test_viewer(api: Api) -> None:
    data = await api.data(
        "grid.donghu", "{ viewer { roles staff { username } unit { name kind } } }"
    )
    assert data["viewer"]["roles"] == ["GRID_WORKER"]
    assert data["viewer"]["staff"]["username"] == "grid.donghu"
    assert data["viewer"]["unit"]["kind"] == "GRID"


async def test_grid_worker_sees_only_its_grid(api: Api) -> None:
    nodes = await all_persons(api, "grid.donghu")
    assert nodes, "the demo grid has residents"
    units = {n["residenceUnit"]["name"] for n in nodes}
    assert units == {"东湖第1社区第一网格"}
    total = (await api.data("grid.donghu", "{ persons { totalCount } }"))["persons"]["totalCount"]
    assert total == len(nodes) == len({n["id"] for n in nodes}), "cursor paging is stable"
    named = 0
    for n in nodes:
        assert n["idNumber"] is None and n["sensitiveCategories"] is None
        assert {"idNumber", "sensitiveCategories"} <= set(n["redactedFields"])
        assert n["maskedName"] and n["maskedName"][1:] == "*" * (len(n["maskedName"]) - 1)
        if n["name"] is None:
            assert {"name", "phone"} <= set(n["redactedFields"])
        else:
            named += 1
            assert n["phone"] and n["maskedName"][0] == n["name"][0]
    assert 0 < named < len(nodes), "adults without sensitive categories only"


async def test_roles_without_person_access_see_none(api: Api) -> None:
    for user in ("admin", "auditor", "leader", "office"):
        data = await api.data(
            user, "{ persons { totalCount edges { node { id } } } cases { totalCount } }"
        )
        assert data["persons"] == {"totalCount": 0, "edges": []}
        assert data["cases"]["totalCount"] == 0


async def test_invisible_node_is_indistinguishable_from_missing(api: Api) -> None:
    xishan = [n for n in await all_persons(api, "social.donghu")]
    assert xishan
    visible_id = xishan[0]["id"]
    # grid.donghu cannot see social.donghu's whole street: find one it cannot see.
    grid_ids = {n["id"] for n in await all_persons(api, "grid.donghu")}
    hidden = next(n["id"] for n in xishan if n["id"] not in grid_ids)
    import base64

    missing = base64.b64encode(b"Person:99999999").decode()
    query = "query($id: ID!) { node(id: $id) { id ... on Person { name } } }"
    hidden_body = await api.gql("grid.donghu", query, {"id": hidden})
    missing_body = await api.gql("grid.donghu", query, {"id": missing})
    assert hidden_body == missing_body == {"data": {"node": None}}
    seen = await api.data("social.donghu", query, {"id": visible_id})
    assert seen["node"]["id"] == visible_id


async def test_malformed_ids_are_typed_errors(api: Api) -> None:
    body = await api.gql("grid.donghu", '{ node(id: "%%%") { id } }')
    assert body["errors"][0]["extensions"]["code"] == "INVALID_ID"
    assert "Traceback" not in str(body)


async def test_page_size_bounds(api: Api) -> None:
    body = await api.gql("grid.donghu", "{ persons(first: 101) { totalCount } }")
    assert body["errors"][0]["extensions"]["code"] == "INVALID"
    assert body["errors"][0]["extensions"]["field"] == ["first"]
    default = await api.data("social.donghu", "{ persons { edges { node { id } } } }")
    assert len(default["persons"]["edges"]) == 20


async def test_malformed_cursor_is_a_typed_error(api: Api) -> None:
    for cursor in ("garbage", "WyJ4Il0", "W10"):
        body = await api.gql("grid.donghu", PERSONS, {"first": 5, "after": cursor})
        assert body["errors"][0]["extensions"]["code"] == "INVALID", cursor
        assert body["data"] is None


async def test_filtering_on_a_class_not_readable_under_every_grant_is_refused(api: Api) -> None:
    # A volunteer sees linked families' names and phones but no basic data (residence, gender),
    # so filtering by residence would reveal where people it can name live.
    unit = api.district.communities[0]["grid"]
    import base64

    grid = base64.b64encode(f"Unit:{unit}".encode()).decode()
    query = "query($u: ID!) { persons(filter: {residenceUnit: $u}) { totalCount } }"
    body = await api.gql("volunteer.li", query, {"u": grid})
    assert body["data"] is None
    assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    assert body["errors"][0]["extensions"]["field"] == ["residenceUnit"]
    ok = await api.data("grid.donghu", query, {"u": grid})
    assert ok["persons"]["totalCount"] > 0
    # An explicit order on a class not readable under every grant is refused too; the default
    # order silently falls back to the record key instead.
    explicit = await api.gql(
        "partner.chenguang", "{ cases(orderBy: {direction: ASC}) { totalCount } }"
    )
    assert explicit["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    default = await api.data("partner.chenguang", "{ cases { totalCount edges { node { id } } } }")
    assert default["cases"]["totalCount"] == len(default["cases"]["edges"]) > 0


async def test_case_fields_by_role(api: Api) -> None:
    query = """{ cases(first: 100) { totalCount edges { node { id riskLevel status presentingProblem
                 diagnosis redactedFields subject { id } } } } }"""
    police = (await api.data("police.donghu", query))["cases"]
    assert police["totalCount"] > 0
    import base64

    emergency = base64.b64encode(
        f"Case:{api.district.records[0]['emergency_case']}".encode()
    ).decode()
    for e in police["edges"]:
        node = e["node"]
        # high-risk cases of their jurisdiction, and a case they broke glass on (if a test did)
        assert node["riskLevel"] == "HIGH" or node["id"] == emergency
        assert node["presentingProblem"] is None and node["diagnosis"] is None
        assert {"presentingProblem", "diagnosis"} <= set(node["redactedFields"])
    psychiatrist = (await api.data("psychiatrist", query))["cases"]
    assert any(e["node"]["diagnosis"] for e in psychiatrist["edges"])
    zongzhi = (await api.data("zongzhi", query))["cases"]
    assert zongzhi["totalCount"] >= police["totalCount"]


async def test_volunteer_sees_linked_families_only(api: Api) -> None:
    query = """{ families { totalCount edges { node { specialType circumstances redactedFields
               members(first: 5) { person { name phone idNumber cases(first: 5) { id } } } } } }
               cases { totalCount } }"""
    data = await api.data("volunteer.li", query)
    assert data["families"]["totalCount"] == 4, "one linked 失独 family per community"
    assert data["cases"]["totalCount"] == 0
    for e in data["families"]["edges"]:
        node = e["node"]
        assert node["circumstances"] is None and node["specialType"] is None
        for member in node["members"]:
            p = member["person"]
            assert p["name"] and p["phone"] and p["idNumber"] is None and p["cases"] == []


async def test_health_endpoints(api: Api) -> None:
    assert (await api.get("/healthz")).json() == {"status": "ok"}
    ready = await api.get("/readyz")
    assert ready.status_code == 200 and ready.json() == {
        "status": "ok",
        "database": "up",
        "keys": "checked",
    }
    # A server started without its lifespan never checked its keys: not ready.
    from dataclasses import replace

    from api.app import create_app
    from tests.conftest import Api as Client

    unchecked = create_app(replace(api.app.state.settings, scheduler_seconds=0))
    client = Client(api.backend, unchecked, unchecked.state.engine, api.district, api.url)
    not_ready = await client.get("/readyz")
    await unchecked.state.engine.dispose()
    assert not_ready.status_code == 503 and not_ready.json()["keys"] == "unchecked"


async def test_filters_and_counts_never_reveal_hidden_records(api: Api) -> None:
    import base64

    query = "query($u: ID!) { persons(filter: {residenceUnit: $u}) { totalCount edges { node { id } } } }"
    xishan = base64.b64encode(f"Unit:{api.district.communities[3]['grid']}".encode()).decode()
    nowhere = base64.b64encode(b"Unit:99999999").decode()
    hidden = await api.data("grid.donghu", query, {"u": xishan})
    missing = await api.data("grid.donghu", query, {"u": nowhere})
    assert hidden == missing == {"persons": {"totalCount": 0, "edges": []}}
    cases = "query($s: [CaseStatus!]) { cases(filter: {status: $s}) { totalCount } }"
    everything = (await api.data("police.donghu", cases, {"s": None}))["cases"]["totalCount"]
    split = [
        (await api.data("police.donghu", cases, {"s": [s]}))["cases"]["totalCount"]
        for s in ("INTAKE", "ASSESSING", "ACTIVE", "MONITORING", "CLOSED")
    ]
    assert sum(split) == everything, "filtered counts add up to the visible total, nothing more"


async def test_a_full_page_has_every_visible_row(api: Api) -> None:
    page = (await api.data("social.donghu", PERSONS, {"first": 100}))["persons"]
    assert page["totalCount"] > 100
    assert len(page["edges"]) == 100 and page["pageInfo"]["hasNextPage"]


async def test_id_number_filter_only_for_those_who_may_read_id_numbers(api: Api) -> None:

    number = (await api.plain_person(api.district.records[0]["high_subject"])).id_number
    query = "query($n: String) { persons(filter: {idNumber: $n}) { totalCount edges { node { idNumber } } } }"
    police = await api.data("police.donghu", query, {"n": number})
    assert police["persons"]["edges"] == [{"node": {"idNumber": number}}]
    social = await api.gql("social.donghu", query, {"n": number})
    assert social["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    bad = await api.gql("police.donghu", query, {"n": "12345"})
    assert bad["errors"][0]["extensions"]["code"] == "INVALID_ID_NUMBER"
