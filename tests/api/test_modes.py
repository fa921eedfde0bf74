"""Development and production modes; request limits; headers."""

from __future__ import annotations

from dataclasses import replace

from api.app import create_app
from api.settings import Mode, Settings
from tests.conftest import Api

INTROSPECT = "{ __schema { types { name } } }"


async def _prod(api: Api, staff_adhoc: bool | None = True) -> Api:
    settings = replace(api.app.state.settings, mode=Mode.PRODUCTION, staff_adhoc=staff_adhoc)
    app = create_app(settings)
    return Api(api.backend, app, app.state.engine, api.district, api.url)


async def test_development_mode_serves_graphiql_and_introspection(api: Api) -> None:
    page = await api.get("/graphql", {"Accept": "text/html"})
    assert page.status_code == 200 and "graphiql" in page.text.lower()
    body = await api.gql("grid.donghu", INTROSPECT)
    assert body["data"]["__schema"]["types"]


async def test_production_mode_has_no_ide_no_get_no_introspection_no_suggestions(api: Api) -> None:
    prod = await _prod(api)
    page = await prod.get("/graphql", {"Accept": "text/html"})
    assert "graphiql" not in page.text.lower()
    via_get = await prod.get("/graphql?query=%7Bviewer%7Broles%7D%7D")
    assert via_get.status_code in (400, 404, 405)
    body = await prod.gql("grid.donghu", INTROSPECT)
    assert body.get("data") is None and body["errors"]
    typo = await prod.gql("grid.donghu", "{ persns { totalCount } }")
    assert "Did you mean" not in str(typo)
    ok = await prod.data("grid.donghu", "{ viewer { roles } }")
    assert ok["viewer"]["roles"] == ["GRID_WORKER"]
    await prod.engine.dispose()


async def test_depth_and_body_limits(api: Api) -> None:
    deep = "{ cases { edges { node { subject { families { family { members { person { cases { interventions { case { subject { id } } } } } } } } } } } } }"
    body = await api.gql("grid.donghu", deep)
    assert body.get("data") is None and "depth" in body["errors"][0]["message"].lower()
    huge = await api.post(
        {"query": "{ viewer { roles } }", "pad": "x" * 1_100_000},
        {"Authorization": f"Bearer {api.token('grid.donghu')}"},
    )
    assert huge.status_code == 413
    assert huge.json()["errors"][0]["extensions"]["traceId"] == huge.headers["x-trace-id"]


async def test_security_headers(api: Api) -> None:
    response = await api.get("/healthz")
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["cache-control"] == "no-store"


def test_settings_from_env() -> None:
    s = Settings.from_env(
        {"XINQIAO_MODE": "production", "XINQIAO_PORT": "9000", "XINQIAO_MAX_PAGE_SIZE": "50"}
    )
    assert s.production and s.port == 9000 and s.max_page_size == 50
    assert Settings.from_env({}).database_url.startswith("sqlite+aiosqlite:///")


async def test_production_staff_run_only_the_allow_list(api: Api) -> None:
    document = "query Mine { viewer { roles } }"
    prod = await _prod(api, staff_adhoc=None)
    refused = await prod.gql("grid.donghu", document)
    assert refused["errors"][0]["extensions"]["code"] == "PERSISTED_QUERY_NOT_ALLOWED"
    registered = await api.data(
        "admin",
        """mutation($d: String!) {
        registerPersistedQuery(document: $d, name: "viewer") { sha256 errors { code } } }""",
        {"d": document},
    )
    digest = registered["registerPersistedQuery"]["sha256"]
    assert len(digest) == 64
    prod.app.state.graphql.registries._cache.clear()
    ok = await prod.data("grid.donghu", document)
    assert ok["viewer"]["roles"] == ["GRID_WORKER"]
    by_hash = await prod.post(
        {"extensions": {"persistedQuery": {"version": 1, "sha256Hash": digest}}},
        {"Authorization": f"Bearer {prod.token('grid.donghu')}"},
    )
    assert by_hash.json()["data"]["viewer"]["roles"] == ["GRID_WORKER"]
    await prod.engine.dispose()
