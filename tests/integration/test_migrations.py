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
        assert await runner.current_revision(engine) == "0003"
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
        assert await runner.current_revision(engine) == "0003"
    finally:
        await engine.dispose()
