"""DataLoaders: the number of SQL statements of a nested query does not grow with page size."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import event

from api.app import create_app
from api.settings import Settings
from authz.policy import AllowAllPolicy
from tests.conftest import Api

NESTED = """
query($first: Int!) {
  cases(first: $first) {
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


@contextmanager
def count_statements(engine: object) -> Iterator[list[str]]:
    statements: list[str] = []

    def record(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        statements.append(statement)

    sync = engine.sync_engine  # type: ignore[attr-defined]
    event.listen(sync, "before_cursor_execute", record)
    try:
        yield statements
    finally:
        event.remove(sync, "before_cursor_execute", record)


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
        counts[size] = len(statements)
    await app.state.engine.dispose()
    assert counts[50] == counts[5], counts
    assert counts[5] <= 20, counts
