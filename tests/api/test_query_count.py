"""DataLoaders: the number of SQL statements of a nested query does not grow with page size."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from sqlalchemy import event

from api.app import create_app
from api.settings import Settings
from authz.policy import AllowAllPolicy
from tests.conftest import Api

NESTED = """
query($first: Int!) {
  cases(first: $first, orderBy: {direction: ASC}) {
    edges { node {
      id status
      subject {
        maskedName
        families { relationship family {
          id
          members { relationship person {
            maskedName
            cases { id riskLevel interventions { id kind notes } }
          } }
        } }
      }
    } }
  }
}"""


SAVEPOINTS = ("SAVEPOINT ", "RELEASE SAVEPOINT ", "ROLLBACK TO SAVEPOINT ")
"""The isolated test's own statements (tests/conftest.py: each session of the service works in a
savepoint of the test's transaction); the service issues none of them."""


@contextmanager
def count_statements(engine: object) -> Iterator[list[str]]:
    statements: list[str] = []

    def record(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        if not statement.startswith(SAVEPOINTS):
            statements.append(statement)

    sync = engine.sync_engine  # type: ignore[attr-defined]
    event.listen(sync, "before_cursor_execute", record)
    try:
        yield statements
    finally:
        event.remove(sync, "before_cursor_execute", record)


# Counts the statements of a second app's own engine, which must run them itself.
@pytest.mark.own_database
async def test_nested_query_statement_count_is_independent_of_page_size(api: Api) -> None:
    # The allow-all policy makes every level non-empty, so every loader really runs.
    app = create_app(
        Settings(
            database_url=api.url,
            key_dir=api.app.state.settings.key_dir,
            max_query_depth=20,
            max_query_cost=100_000_000,
        ),
        policy=AllowAllPolicy(),
    )
    allow_all = Api(api.backend, app, app.state.engine, api.district, api.url)
    counts = {}
    seen: dict[int, list[str]] = {}
    for size in (5, 50):
        with count_statements(app.state.engine) as statements:
            data = await allow_all.data("admin", NESTED, {"first": size})
        edges = data["cases"]["edges"]
        assert len(edges) == size
        members = [
            m
            for e in edges
            for f in e["node"]["subject"]["families"]
            for m in f["family"]["members"]
        ]
        assert members, "the query must reach every level for the count to mean anything"
        # The access log is one executemany per request; the driver splits it into several
        # INSERTs by parameter limits, which says nothing about data loading.
        loading = [st for st in statements if "access_events" not in st and "audit_" not in st]
        counts[size] = len(loading)
        seen[size] = [st.split("FROM")[1].split()[0] if "FROM" in st else st[:30] for st in loading]
    await app.state.engine.dispose()
    # DataLoaders batch per event-loop tick, and siblings at one depth may resolve in two waves
    # depending on the data, so a level can cost one extra statement; a per-row (N+1) pattern
    # would cost 50+ at the larger size. The bound is absolute, whatever the page size.
    assert counts[50] <= counts[5] + 2, (counts, " ".join(seen[5]), " ".join(seen[50]))
    assert counts[5] <= 20 and counts[50] <= 20, counts


async def test_a_count_alone_loads_no_page(api: Api) -> None:
    """``totalCount`` without edges runs the count only; the same count with edges also loads
    the page. Both give the same number."""
    count_only = "{ cases(filter: {riskLevel: HIGH}) { totalCount } }"
    with_page = "{ cases(filter: {riskLevel: HIGH}) { totalCount edges { node { id } } } }"
    with count_statements(api.engine) as alone:
        counted = await api.data("zongzhi", count_only)
    with count_statements(api.engine) as paged:
        listed = await api.data("zongzhi", with_page)
    assert counted["cases"]["totalCount"] == listed["cases"]["totalCount"] > 0
    selects = [s for s in alone if s.lstrip().upper().startswith("SELECT") and " cases" in s]
    assert len(selects) == 1, "one count statement, no page of rows"
    assert len([s for s in paged if " cases" in s and "count(" not in s.lower()]) >= 1
