"""Test fixtures: a migrated demo district on SQLite always, and on PostgreSQL when reachable.

Tests talk to the service the way clients do: GraphQL over HTTP (in-process ASGI transport) with
bearer tokens of the demo accounts.
"""

from __future__ import annotations

import base64
import os
import socket
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from api.app import create_app
from api.cli.demo import District, load_demo
from api.keyring import init_keys
from api.keyring import load as load_keys
from api.keyring import verify as verify_keys
from api.settings import Settings
from domain.session import create_engine
from migrations import runner
from tests import observability

DEFAULT_PG = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
DEMO_PERSONS = 1000


def postgres_url() -> str | None:
    """The admin URL of a PostgreSQL server to test against, or None.

    With XINQIAO_TEST_POSTGRES_URL set (as CI does) PostgreSQL is required: an unreachable server
    fails the run instead of being skipped.
    """
    explicit = os.environ.get("XINQIAO_TEST_POSTGRES_URL")
    if explicit:
        return explicit
    try:
        with socket.create_connection(("127.0.0.1", 5432), timeout=0.5):
            return DEFAULT_PG
    except OSError:
        return None


BACKENDS = ["sqlite"] + (["postgresql"] if postgres_url() else [])


async def _fresh_postgres(admin_url: str) -> tuple[str, str]:
    name = f"xinqiao_test_{uuid.uuid4().hex[:10]}"
    admin = create_async_engine(admin_url, isolation_level="AUTOCOMMIT")
    async with admin.connect() as conn:
        await conn.execute(text(f'CREATE DATABASE "{name}"'))
    await admin.dispose()
    base, _, _ = admin_url.rpartition("/")
    return f"{base}/{name}", name


async def _drop_postgres(admin_url: str, name: str) -> None:
    admin = create_async_engine(admin_url, isolation_level="AUTOCOMMIT")
    async with admin.connect() as conn:
        await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    await admin.dispose()


@pytest.fixture(scope="session")
def tmp_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("xinqiao")


@dataclass
class Api:
    """A client of one backend's running service."""

    backend: str
    app: Any
    engine: AsyncEngine
    district: District
    url: str

    def token(self, username: str, ttl: int | None = None) -> str:
        return self.app.state.tokens.issue(
            staff_id=self.district.staff[username], username=username, ttl_seconds=ttl
        )

    async def post(self, json: Any, headers: dict[str, str] | None = None) -> httpx.Response:
        transport = httpx.ASGITransport(app=self.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            return await client.post("/graphql", json=json, headers=headers or {})

    async def get(self, path: str, headers: dict[str, str] | None = None) -> httpx.Response:
        transport = httpx.ASGITransport(app=self.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            return await client.get(path, headers=headers or {})

    async def gql(
        self, user: str | None, query: str, variables: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        headers = {"Authorization": f"Bearer {self.token(user)}"} if user else {}
        response = await self.post({"query": query, "variables": variables or {}}, headers)
        body: dict[str, Any] = response.json()
        return body

    async def plain_person(self, person_id: int) -> SimpleNamespace:
        """A person's fields in the clear, as an operator with the keys would read them (for
        tests that need the value a client would type, such as an ID number to look up)."""
        from domain import models as m
        from domain.keys import load_data_keys
        from domain.sealing import unseal
        from domain.session import system_session

        async with system_session(self.engine, reason="test: read a person's sealed fields") as s:
            row = (await s.execute(select(m.Person).where(m.Person.id == person_id))).scalar_one()
            keys = await load_data_keys(s, self.app.state.keys, [row.key_owner])
            key = keys.get(row.key_owner)
            fields = {a: unseal(row, a, key) for a in ("name", "id_number", "phone", "address")}
        return SimpleNamespace(id=person_id, **fields)

    async def data(
        self, user: str | None, query: str, variables: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """The data of a query that must succeed without errors."""
        body = await self.gql(user, query, variables)
        assert not body.get("errors"), body.get("errors")
        result: dict[str, Any] = body["data"]
        return result


async def _make_api(backend: str, root: Path) -> tuple[Api, str | None]:
    pg_name = None
    if backend == "sqlite":
        url = f"sqlite+aiosqlite:///{root / 'xinqiao.db'}"
    else:
        admin = postgres_url()
        assert admin is not None
        url, pg_name = await _fresh_postgres(admin)
    engine = create_engine(url)
    await runner.upgrade(engine)
    init_keys(root / "keys")
    district = await load_demo(engine, persons=DEMO_PERSONS, seed=11, keys=load_keys(root / "keys"))
    init_keys(root / "keys")
    settings = Settings(database_url=url, key_dir=root / "keys")
    app = create_app(settings, telemetry=observability.TELEMETRY)
    await _remember_secrets(engine, app.state.keys)
    # What the ASGI lifespan does at start-up (the in-process transport runs no lifespan).
    await verify_keys(app.state.engine, app.state.keys)
    app.state.keys_verified = True
    return Api(backend, app, app.state.engine, district, url), pg_name


_DEMO_LOADED = False


async def _remember_secrets(engine: AsyncEngine, keys: Any) -> None:
    """Every sealed value of the demo, for the end-of-session scan of logs and telemetry."""
    from domain import models as m

    global _DEMO_LOADED
    _DEMO_LOADED = True

    for row, attr, _, value in await observability.open_sealed(engine, keys):
        # Two-character names and stock phrases also occur in ordinary text; the scan looks
        # for names of three or more characters, every ID number, phone and birth date, and
        # free text of eight or more.
        if not value or attr == "answers":
            continue
        if isinstance(row, m.Person) and (attr != "name" or len(value) >= 3):
            observability.SECRETS.add(value)
        elif not isinstance(row, m.Person) and len(value) >= 8:
            observability.SECRETS.add(value)


def pytest_configure(config: pytest.Config) -> None:
    observability.capture_logs()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Fail the run if any log line or span attribute of the whole suite holds a demo person's
    name, ID number or phone (issue 7: logs and traces never carry personal data)."""
    secrets = observability.SECRETS
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if len(secrets) < DEMO_PERSONS:
        if _DEMO_LOADED:  # a district was loaded but its values were not read: scan nothing
            if reporter is not None:
                reporter.write_line(
                    f"PRIVACY SCAN FAILED: only {len(secrets)} demo values to look for", red=True
                )
            session.exitstatus = pytest.ExitCode.TESTS_FAILED
        elif reporter is not None:
            reporter.write_line("privacy scan skipped: no test loaded the demo district")
        return
    in_logs = observability.hits(observability.LOGS.getvalue(), secrets)
    telemetry = observability.SPANS.values | observability.metric_labels()
    in_spans = observability.hits("\n".join(telemetry), secrets)
    if in_logs or in_spans:
        if reporter is not None:
            reporter.write_line(
                f"PRIVACY SCAN FAILED: {len(in_logs)} personal values in logs, "
                f"{len(in_spans)} in span attributes, e.g. {(in_logs + in_spans)[:3]}",
                red=True,
            )
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
    elif reporter is not None:
        reporter.write_line(
            f"privacy scan: {len(secrets)} demo values, none in "
            f"{len(observability.LOGS.getvalue())} bytes of logs or "
            f"{observability.SPANS.count} spans"
        )


@pytest.fixture(scope="session", params=BACKENDS)
async def api(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Api]:
    root = tmp_path_factory.mktemp(request.param)
    made, pg_name = await _make_api(request.param, root)
    yield made
    await made.engine.dispose()
    if pg_name:
        admin = postgres_url()
        assert admin is not None
        await _drop_postgres(admin, pg_name)


@pytest.fixture(params=BACKENDS)
async def empty_database(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """The URL of a fresh, empty database of each backend (for migration and CLI tests)."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'empty.db'}"
        return
    admin = postgres_url()
    assert admin is not None
    url, name = await _fresh_postgres(admin)
    yield url
    await _drop_postgres(admin, name)


@pytest.fixture(scope="session")
async def glass_broken(api: Api) -> None:
    """police.donghu breaks glass on the emergency case of community 0, once per backend."""
    case_id = api.district.records[0]["emergency_case"]
    data = await api.data(
        "police.donghu",
        """
      mutation($case: ID!) { breakGlass(case: $case, reason: "家属报告其有自杀风险，需要立即核实身份和位置") {
        access { id expiresAt } errors { code } } }""",
        {"case": base64.b64encode(f"Case:{case_id}".encode()).decode()},
    )
    assert data["breakGlass"]["errors"] == []
