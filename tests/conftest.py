"""Test fixtures: a migrated demo district on SQLite always, and on PostgreSQL when reachable.

Tests talk to the service the way clients do: GraphQL over HTTP (in-process ASGI transport) with
bearer tokens of the demo accounts.

Isolation. Each backend's district is built once per run (migrations, the demo, the app) and is
never changed by a test. Every test that takes ``api`` runs inside one database transaction
that is rolled back when it ends: the fixture opens one connection on the shared engine, begins
a transaction on it, and binds every session the service opens for that database to it (each
session works in a SAVEPOINT, so its commit and rollback behave as they would on their own
connection). That covers the request sessions (``app.state.graphql.sessions``), every
``system_session`` (authentication, sign-in, the persisted-query registry, the access log's
operator paths, the scheduler's ``escalate_overdue``, the alert feed's polls, and the tests'
own assertions), and the sessions of any second app a test creates on the same database (by
URL). After each test the district's row counts are compared with the baseline: a test whose
writes escaped the transaction fails there.

One connection runs one statement at a time, and a transaction cannot be seen from another
thread, process or connection. Tests that need that (concurrent requests, a WebSocket server
on Starlette's test client, a ``xinqiao`` subprocess, a second engine's statement counts) are
marked ``own_database``: they get an ``api`` on a private copy of the district (copied from a
template made when the district was built), where writes are committed for real, and the copy
is dropped afterwards. An unmarked test that starts a statement while another is running on its
connection fails, saying so. Tests of migrations, the CLI and key rotation use
``empty_database``.
"""

from __future__ import annotations

import base64
import copy
import os
import shutil
import socket
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from sqlalchemy import event, func, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine

import domain.session
from api import app as app_module
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


@dataclass
class Shared:
    """One backend's district, built once per run: the app every isolated test talks to, a
    template to copy for ``own_database`` tests, and the row counts no test may change."""

    api: Api
    root: Path
    template: str
    """SQLite: the path of a copy of the database file; PostgreSQL: a template database."""
    pg_names: list[str] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)


async def _make_shared(backend: str, root: Path) -> Shared:
    pg_names: list[str] = []
    if backend == "sqlite":
        url = f"sqlite+aiosqlite:///{root / 'xinqiao.db'}"
    else:
        admin = postgres_url()
        assert admin is not None
        url, pg_name = await _fresh_postgres(admin)
        pg_names.append(pg_name)
    engine = create_engine(url)
    await runner.upgrade(engine)
    init_keys(root / "keys")
    district = await load_demo(engine, persons=DEMO_PERSONS, seed=11, keys=load_keys(root / "keys"))
    init_keys(root / "keys")
    settings = Settings(database_url=url, key_dir=root / "keys")
    app = create_app(settings, telemetry=observability.TELEMETRY)
    await _remember_secrets(engine, app.state.keys)
    await engine.dispose()
    # What the ASGI lifespan does at start-up (the in-process transport runs no lifespan).
    await verify_keys(app.state.engine, app.state.keys)
    app.state.keys_verified = True
    made = Api(backend, app, app.state.engine, district, url)
    # The template for own_database copies: the district exactly as the tests start from it.
    await app.state.engine.dispose()  # no connection may be open on a template's source
    if backend == "sqlite":
        template = str(root / "template.db")
        shutil.copyfile(root / "xinqiao.db", template)
    else:
        admin = postgres_url()
        assert admin is not None
        template = f"{make_url(url).database}_template"
        await _admin_sql(admin, f'CREATE DATABASE "{template}" TEMPLATE "{make_url(url).database}"')
        pg_names.append(template)
    shared = Shared(made, root, template, pg_names)
    shared.counts = await row_counts(made.engine)
    return shared


async def _admin_sql(admin_url: str, statement: str) -> None:
    admin = create_async_engine(admin_url, isolation_level="AUTOCOMMIT")
    async with admin.connect() as conn:
        await conn.execute(text(statement))
    await admin.dispose()


def count_rows() -> Any:
    """One statement: the number of rows of every table, as columns named after the tables."""
    from domain import models  # noqa: F401  (every model registered on Base.metadata)
    from domain.base import Base

    tables = sorted(Base.metadata.tables.items())
    return select(
        *(select(func.count()).select_from(t).scalar_subquery().label(n) for n, t in tables)
    )


async def row_counts(engine: AsyncEngine) -> dict[str, int]:
    """The number of rows of every table, on a connection of its own (what is committed)."""
    async with engine.connect() as conn:
        return dict((await conn.execute(count_rows())).one()._mapping)


class Districts:
    """The shared district of each backend, built the first time a test asks for it (so a run
    that touches one backend builds one), kept for the whole run, and dropped at its end."""

    def __init__(self, factory: pytest.TempPathFactory) -> None:
        self.factory = factory
        self.made: dict[str, Shared] = {}

    async def get(self, backend: str) -> Shared:
        if backend not in self.made:
            self.made[backend] = await _make_shared(backend, self.factory.mktemp(backend))
        return self.made[backend]

    async def close(self) -> None:
        for shared in self.made.values():
            await shared.api.engine.dispose()
            admin = postgres_url()
            for name in shared.pg_names:
                assert admin is not None
                await _drop_postgres(admin, name)


@asynccontextmanager
async def isolated(shared: Shared) -> AsyncIterator[Api]:
    """The shared app, with every session it opens on its database bound to one connection in
    a transaction that is rolled back at the end."""
    base = shared.api
    async with base.engine.connect() as conn:
        await conn.begin()
        if conn.dialect.name == "sqlite":
            # The sqlite3 driver begins a transaction only before INSERT, UPDATE or DELETE, and
            # never before a SAVEPOINT: a released savepoint would then be committed for good.
            # Begin it explicitly, so that every savepoint is nested in the transaction.
            await conn.exec_driver_sql("BEGIN")
        try:
            with _one_statement_at_a_time(base.engine, conn):
                async with _bound_to(base, conn) as bound:
                    yield bound
        finally:
            await conn.rollback()


class ConcurrentStatements(RuntimeError):
    """An isolated test ran two statements at once (on its one connection)."""


CONCURRENT = (
    "two statements at once on the test's one connection (concurrent requests, a background "
    "task, another thread?): mark the test own_database (tests/conftest.py)"
)


@contextmanager
def _one_statement_at_a_time(engine: AsyncEngine, conn: Any) -> Iterator[None]:
    """Fail a statement that starts while another is still running on the test's connection,
    naming the cure, instead of letting the two corrupt each other's savepoints."""
    sync = conn.sync_connection
    running: list[str] = []

    clashes: list[str] = []

    def before(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if running:
            clashes.append(statement)
            raise ConcurrentStatements(CONCURRENT)
        running.append(statement)

    def after(*_: Any) -> None:
        running.clear()

    def failed(context: Any) -> None:
        if context.connection is sync:
            running.clear()

    event.listen(sync, "before_cursor_execute", before)
    event.listen(sync, "after_cursor_execute", after)
    event.listen(engine.sync_engine, "handle_error", failed)
    try:
        yield
    finally:
        event.remove(engine.sync_engine, "handle_error", failed)
        event.remove(sync, "after_cursor_execute", after)
        event.remove(sync, "before_cursor_execute", before)
    if clashes:  # the service may have turned the error into INTERNAL_ERROR: say it here too
        pytest.fail(CONCURRENT)


@asynccontextmanager
async def _bound_to(base: Api, conn: Any) -> AsyncIterator[Api]:
    sessions = async_sessionmaker(
        bind=conn,
        expire_on_commit=False,
        autoflush=False,
        join_transaction_mode="create_savepoint",
    )
    url = base.engine.url
    unbound = domain.session.session_factory

    def session_factory(engine: AsyncEngine) -> Any:
        """domain.session.session_factory, bound to the test's transaction for this database
        (system sessions, and the request sessions of apps a test creates on it)."""
        return sessions if engine.url == url else unbound(engine)

    graphql = base.app.state.graphql
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(domain.session, "session_factory", session_factory)
        patch.setattr(app_module, "session_factory", session_factory)
        patch.setattr(graphql, "sessions", sessions)
        _forget_in_memory_state(base.app)
        try:
            # A copy of the ids: a test may add to them (an account it created).
            yield replace(base, district=copy.deepcopy(base.district))
        finally:
            _forget_in_memory_state(base.app)


def _forget_in_memory_state(app: Any) -> None:
    """What the shared app remembers between requests, beyond the database: rate-limit
    budgets and the persisted-query cache (which may hold a rolled-back registration)."""
    graphql = app.state.graphql
    graphql.registries._cache.clear()
    for limiter in (graphql.lookup_limiter, graphql.request_limiter):
        hits = getattr(limiter, "_hits", None)
        if hits is not None:
            hits.clear()


@asynccontextmanager
async def own_copy(shared: Shared, root: Path) -> AsyncIterator[Api]:
    """A private copy of the district (and its keys) with an app of its own: writes commit."""
    base = shared.api
    shutil.copytree(base.app.state.settings.key_dir, root / "keys")
    pg_name = None
    if base.backend == "sqlite":
        shutil.copyfile(shared.template, root / "own.db")
        url = f"sqlite+aiosqlite:///{root / 'own.db'}"
    else:
        admin = postgres_url()
        assert admin is not None
        pg_name = f"xinqiao_test_{uuid.uuid4().hex[:10]}"
        await _admin_sql(admin, f'CREATE DATABASE "{pg_name}" TEMPLATE "{shared.template}"')
        url = make_url(base.url).set(database=pg_name).render_as_string(hide_password=False)
    app = create_app(
        replace(base.app.state.settings, database_url=url, key_dir=root / "keys"),
        telemetry=observability.TELEMETRY,
    )
    app.state.keys_verified = True  # the same keys as the shared district's, checked there
    try:
        yield Api(base.backend, app, app.state.engine, copy.deepcopy(base.district), url)
    finally:
        await app.state.engine.dispose()
        if pg_name:
            admin = postgres_url()
            assert admin is not None
            await _drop_postgres(admin, pg_name)


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


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    """The random order's seed, also under ``-q`` (which hides the report header that names it):
    ``--random-order-seed=N`` runs the same order again."""
    if not config.pluginmanager.hasplugin("random_order"):
        return
    from random_order.config import Config as RandomOrder

    order = RandomOrder(config)
    if order.is_enabled:
        terminalreporter.write_line(
            f"random order: --random-order-bucket={order.bucket_type} "
            f"--random-order-seed={order.seed}"
        )


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


@pytest.fixture(scope="session")
async def districts(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Districts]:
    """Not parametrised: random order may alternate backends test by test, and each district
    is still built once."""
    made = Districts(tmp_path_factory)
    yield made
    await made.close()


@pytest.fixture(params=BACKENDS)
async def api(
    request: pytest.FixtureRequest,
    districts: Districts,
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[Api]:
    """The service on the backend's demo district, in a transaction rolled back after the test
    (or, for tests marked ``own_database``, on a private copy of the district)."""
    shared = await districts.get(request.param)
    if request.node.get_closest_marker("own_database"):
        async with own_copy(shared, tmp_path_factory.mktemp("own")) as mine:
            yield mine
    else:
        async with isolated(shared) as bound:
            yield bound
    now = await row_counts(shared.api.engine)
    changed = {t: (n, now[t]) for t, n in shared.counts.items() if now[t] != n}
    if changed:
        shared.counts = now  # report this test, not every test after it
        pytest.fail(f"the test changed the shared district (table: before, after): {changed}")


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


@pytest.fixture
async def glass_broken(api: Api) -> None:
    """police.donghu breaks glass on the emergency case of community 0 (in the test's
    transaction, like any write of the test)."""
    case_id = api.district.records[0]["emergency_case"]
    data = await api.data(
        "police.donghu",
        """
      mutation($case: ID!) { breakGlass(case: $case, reason: "家属报告其有自杀风险，需要立即核实身份和位置") {
        access { id expiresAt } errors { code } } }""",
        {"case": base64.b64encode(f"Case:{case_id}".encode()).decode()},
    )
    assert data["breakGlass"]["errors"] == []
