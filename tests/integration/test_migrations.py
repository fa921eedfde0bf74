"""One baseline revision that creates everything, reversible, and in step with the models."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

import domain.models  # noqa: F401
from domain.base import Base
from domain.session import create_engine
from migrations import runner


async def test_upgrade_downgrade_and_no_drift(empty_database: str) -> None:
    engine = create_engine(empty_database)
    try:
        await runner.upgrade(engine)
        assert await runner.current_revision(engine) == "0016"
        async with engine.connect() as conn:
            tables = set(await conn.run_sync(lambda c: inspect(c).get_table_names()))
            assert set(Base.metadata.tables) <= tables
            diff = await conn.run_sync(
                lambda c: compare_metadata(
                    MigrationContext.configure(c, opts={"compare_type": True}), Base.metadata
                )
            )
        assert diff == [], f"models and migrations differ: {diff}"
        await runner.downgrade(engine)
        assert await runner.current_revision(engine) is None
        async with engine.connect() as conn:
            left = set(await conn.run_sync(lambda c: inspect(c).get_table_names()))
        assert left <= {"alembic_version"}
        await runner.upgrade(engine)  # and back up again
        assert await runner.current_revision(engine) == "0016"
    finally:
        await engine.dispose()


async def test_events_from_before_the_chain_are_chained_on_upgrade(
    empty_database: str, tmp_path
) -> None:
    """A database with access events written before revision 0003 verifies after upgrading."""
    from datetime import UTC, datetime

    from sqlalchemy import text

    from audit.keys import load_or_create_ed25519
    from audit.verify import verify_log
    from domain.session import system_session

    engine = create_engine(empty_database)
    try:
        await runner.upgrade(engine, "0002")
        async with engine.begin() as conn:
            for i in range(3):
                await conn.execute(
                    text(
                        "INSERT INTO access_events (occurred_at, request_id, actor_username, "
                        "actor_roles, purpose, kind, entity, entity_id, fields, redacted, "
                        "field_classes, relations) VALUES (:at, :rid, 'grid.donghu', "
                        "'grid_worker', 'case_management', :kind, 'person', :eid, :fields, "
                        ":redacted, :classes, :relations)"
                    ),
                    {
                        "at": datetime(2026, 11, 1, 8, 0, i, 123456, tzinfo=UTC),
                        "rid": f"old-{i}",
                        "kind": "read" if i else "denied",
                        "eid": i + 1,
                        "fields": '["name"]',
                        "redacted": "[]",
                        "classes": '["identity"]',
                        "relations": '["emergency"]' if i == 2 else '["jurisdiction"]',
                    },
                )
        await runner.upgrade(engine)
        key = load_or_create_ed25519(tmp_path / "audit.pem")
        async with system_session(engine, reason="test verify") as s:
            report = await verify_log(s, key.public_key())
        assert report.ok, report.problem
        assert report.events == 3
        from sqlalchemy import select

        from domain.access_log import AccessEvent

        async with system_session(engine, reason="test") as s:
            rows = (await s.execute(select(AccessEvent).order_by(AccessEvent.seq))).scalars().all()
        assert [r.break_glass for r in rows] == [False, False, True]
        assert [r.person_id for r in rows] == [1, 2, 3], "person events name their person"
    finally:
        await engine.dispose()
