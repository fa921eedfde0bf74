"""Engines and sessions, with the safety net that keeps protected tables behind the gate.

Every ORM statement over a ``Protected`` model must carry the ``ROW_SCOPE`` execution option, which
only the privacy gate sets, or come from a *system* session opened for a named operator task
(migrations, demo loading, sign-in). Anything else raises ``UnscopedQuery``: a resolver that forgets
the gate fails in tests instead of leaking in production.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, cast

from sqlalchemy import CursorResult, Result, event
from sqlalchemy.engine import Engine
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import ORMExecuteState, Session

from domain.base import Protected

ROW_SCOPE = "xinqiao_row_scope"
"""Execution option naming the subject a statement was scoped for."""


class UnscopedQuery(RuntimeError):
    """A protected table was queried without the privacy gate."""


def rows_matched(result: Result[*tuple[Any, ...]]) -> int:
    """How many rows an UPDATE or DELETE without RETURNING matched.

    ``Session.execute`` is typed to return a ``Result``; for such a statement it is always a
    ``CursorResult``, which has the count (the cast is the one thing the types cannot follow)."""
    return cast(CursorResult[*tuple[Any, ...]], result).rowcount


def create_engine(url: str, *, echo: bool = False, **kwargs: Any) -> AsyncEngine:
    if url.startswith("sqlite"):
        kwargs.setdefault("connect_args", {"timeout": 30})
    # Never echo bound parameters into exceptions or logs: they are personal data.
    kwargs.setdefault("hide_parameters", True)
    engine = create_async_engine(url, echo=echo, **kwargs)
    if engine.dialect.name == "sqlite":
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
    return engine


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False, autoflush=False)


@asynccontextmanager
async def system_session(engine: AsyncEngine, *, reason: str) -> AsyncIterator[AsyncSession]:
    """A session allowed to bypass row scoping, for operator tasks only.

    ``reason`` is required so every bypass names its purpose; request handlers never open one
    (an architecture test checks).
    """
    if not reason:
        raise ValueError("a system session needs a reason")
    async with session_factory(engine)() as session:
        session.info["system_reason"] = reason
        yield session


def is_operator_session(session: Session) -> bool:
    """Whether a session was opened for a named operator task (not a request)."""
    return bool(session.info.get("system_reason"))


def _guard(state: ORMExecuteState) -> None:
    if not (state.is_select or state.is_update or state.is_delete):
        return
    if state.session.info.get("system_reason") or state.execution_options.get(ROW_SCOPE):
        return
    for mapper in state.all_mappers:
        if issubclass(mapper.class_, Protected):
            raise UnscopedQuery(
                f"{mapper.class_.__name__} queried without the privacy gate; "
                "use authz.gate.Gate instead of the session"
            )


event.listen(Session, "do_orm_execute", _guard)


def sync_engine_of(engine: AsyncEngine) -> Engine:
    return engine.sync_engine
